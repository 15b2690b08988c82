"""Model-valid CloudFront shapes for ``botocore.stub.Stubber`` (it validates both directions)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import boto3

from infra.aws import Clients
from infra.resources.base import Env
from infra.settings import InfraSettings
from processor.core.fields import DEFAULT_REALTIME_FIELDS

ACCOUNT = "123456789012"
STREAM = "opens-pixel-hits"
STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{STREAM}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/opens-cloudfront-realtime-logs"
RTLOG_ARN = f"arn:aws:cloudfront::{ACCOUNT}:realtime-log-config/opens-pixel-realtime"
SEED_ID = "E2SEEDDIST0001"
SEED_ARN = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{SEED_ID}"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"


def clients() -> Clients:
    """Real botocore clients (no endpoint is ever contacted once wrapped in a Stubber)."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    url = "https://stubbed.invalid"
    return Clients(
        s3=session.client("s3", endpoint_url=url),
        kinesis=session.client("kinesis", endpoint_url=url),
        iam=session.client("iam", endpoint_url=url),
        cloudfront=session.client("cloudfront", endpoint_url=url),
        cloudwatch=session.client("cloudwatch", endpoint_url=url),
        sts=session.client("sts", endpoint_url=url),
        region="us-east-1",
    )


def env(infra: InfraSettings, c: Clients) -> Env:
    return Env(
        infra=infra,
        clients=c,
        account_id=ACCOUNT,
        stream_name=STREAM,
        realtime_fields=DEFAULT_REALTIME_FIELDS,
        pixel_path="/o.gif",
        sleep=lambda _: None,
    )


def realtime_config(fields: list[str] | None = None) -> dict[str, Any]:
    return {
        "ARN": RTLOG_ARN,
        "Name": "opens-pixel-realtime",
        "SamplingRate": 100,
        "EndPoints": [
            {
                "StreamType": "Kinesis",
                "KinesisStreamConfig": {"RoleARN": ROLE_ARN, "StreamARN": STREAM_ARN},
            }
        ],
        "Fields": list(DEFAULT_REALTIME_FIELDS) if fields is None else fields,
    }


def seed_config() -> dict[str, Any]:
    """The seed's hand-made distribution: a bucket origin, a cache policy, no logging."""
    return {
        "CallerReference": "seed-console-2021",
        "Aliases": {"Quantity": 1, "Items": ["t.example.com"]},
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "seed-bucket",
                    "DomainName": "seed-pixel.s3.us-east-1.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                    "OriginAccessControlId": "E3SEEDOAC",
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "seed-bucket",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": CACHING_OPTIMIZED,
            "Compress": True,
        },
        "CacheBehaviors": {"Quantity": 0},
        "Comment": "pixel (hand-made)",
        "Logging": {"Enabled": False, "IncludeCookies": False, "Bucket": "", "Prefix": ""},
        "Enabled": True,
    }


def distribution(config: dict[str, Any], status: str = "Deployed") -> dict[str, Any]:
    return {
        "Distribution": {
            "Id": SEED_ID,
            "ARN": SEED_ARN,
            "Status": status,
            "LastModifiedTime": datetime(2021, 11, 27, tzinfo=UTC),
            "InProgressInvalidationBatches": 0,
            "DomainName": "d111111abcdef8.cloudfront.net",
            "DistributionConfig": copy.deepcopy(config),
        },
        "ETag": "E-GET",
    }
