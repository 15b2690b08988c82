"""Pure builders of every access document the infra module writes; tests assert them exactly.

Least privilege, from the CloudFront guide (real-time logs, IAM role) and the S3 origin access
control guide: CloudFront may assume the role only on behalf of this account; the role may only
describe and write to the one stream (and use its customer key); the pixel bucket may only be
read, object by object, by this one distribution.
"""

from __future__ import annotations

from typing import Any

VERSION = "2012-10-17"
CLOUDFRONT_SERVICE = "cloudfront.amazonaws.com"
# The four calls CloudFront makes on a real-time log stream, and nothing else.
STREAM_WRITE_ACTIONS: tuple[str, ...] = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:PutRecord",
    "kinesis:PutRecords",
)
# Canonical user of CloudFront's log delivery (awslogsdelivery), which writes standard logs.
LOG_DELIVERY_CANONICAL_ID = "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0"

Document = dict[str, Any]


def trust_policy(account_id: str) -> Document:
    """Who may assume the role: CloudFront, and only for this account (confused deputy)."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": CLOUDFRONT_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }


def stream_write_policy(stream_arn: str, kms_key_arn: str | None = None) -> Document:
    """What the role may do: write to this one stream; encrypt with its key if it is a CMK."""
    statements: list[Document] = [
        {
            "Sid": "WriteRealtimeLogRecords",
            "Effect": "Allow",
            "Action": list(STREAM_WRITE_ACTIONS),
            "Resource": stream_arn,
        }
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "EncryptWithStreamKey",
                "Effect": "Allow",
                "Action": "kms:GenerateDataKey",
                "Resource": kms_key_arn,
            }
        )
    return {"Version": VERSION, "Statement": statements}


def pixel_bucket_policy(bucket: str, distribution_arn: str) -> Document:
    """Origin access control: this distribution may read objects, nobody else anything."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "CloudFrontReadsPixel",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDFRONT_SERVICE},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            }
        ],
    }


def log_bucket_grants(owner_id: str) -> list[Document]:
    """The log bucket ACL CloudFront's standard logging needs: owner and log delivery."""
    return [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner_id}, "Permission": "FULL_CONTROL"},
        {
            "Grantee": {"Type": "CanonicalUser", "ID": LOG_DELIVERY_CANONICAL_ID},
            "Permission": "FULL_CONTROL",
        },
    ]


def stream_arn(region: str, account_id: str, stream: str) -> str:
    return f"arn:aws:kinesis:{region}:{account_id}:stream/{stream}"


def role_arn(account_id: str, role: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{role}"


def realtime_log_config_arn(account_id: str, name: str) -> str:
    return f"arn:aws:cloudfront::{account_id}:realtime-log-config/{name}"


def distribution_arn(account_id: str, distribution_id: str) -> str:
    return f"arn:aws:cloudfront::{account_id}:distribution/{distribution_id}"
