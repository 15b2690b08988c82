"""The two S3 buckets: the pixel's (private, read through CloudFront only) and the log bucket.

The pixel bucket holds one object, the GIF, served with ``Cache-Control: no-cache, no-store,
must-revalidate`` so that mail clients and proxies fetch it on every open. The log bucket is
where CloudFront's standard logging writes: ACLs must be enabled (``BucketOwnerPreferred``) and
the ``awslogsdelivery`` account granted ``FULL_CONTROL``; a lifecycle rule expires old logs.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from infra import tags
from infra.aws import error_code, http_status
from infra.errors import InfraError
from infra.pixel import CACHE_CONTROL, CONTENT_TYPE, PIXEL_GIF, pixel_etag
from infra.policies import LOG_DELIVERY_CANONICAL_ID, log_bucket_grants, pixel_bucket_policy
from infra.resources.base import Fix, Resource

PUBLIC_ACCESS_BLOCK: Any = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
SSE_RULE: Any = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
SSE_CONFIG: Any = {"Rules": [SSE_RULE]}
LIFECYCLE_RULE_ID = "opens-expire-standard-logs"

_ABSENT = {
    "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchLifecycleConfiguration",
    "NoSuchTagSet",
    "NoSuchBucketPolicy",
    "NoSuchBucket",
    "NoSuchKey",
    "404",
    "NotFound",
}


def _absent(exc: ClientError) -> bool:
    return error_code(exc) in _ABSENT


class Bucket(Resource):
    """What both buckets share: existence, tags, public access block, ownership, encryption."""

    ownership: str

    @property
    def bucket(self) -> str:
        return self.name

    def read(self) -> bool:
        try:
            self.env.clients.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if http_status(exc) == 404:
                return False
            raise
        return True

    def create(self) -> None:
        s3 = self.env.clients.s3
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectOwnership": self.ownership}
        if self.env.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.env.region}
        s3.create_bucket(**kwargs)
        s3.put_bucket_tagging(
            Bucket=self.bucket, Tagging={"TagSet": tags.as_list(self._wanted_tags())}
        )

    def _wanted_tags(self) -> dict[str, str]:
        return tags.managed_tags(self.env.infra.stack)

    def _tags(self) -> dict[str, str]:
        try:
            tag_set = self.env.clients.s3.get_bucket_tagging(Bucket=self.bucket)["TagSet"]
        except ClientError as exc:
            if _absent(exc):
                return {}
            raise
        return tags.from_list(tag_set)

    def owned(self) -> bool:
        return tags.is_managed(self._tags(), self.env.infra.stack)

    def drift(self) -> list[Fix]:
        s3, bucket = self.env.clients.s3, self.bucket
        fixes: list[Fix] = []
        current_tags = self._tags()
        if tags.missing(current_tags, self._wanted_tags()):
            merged = {**current_tags, **self._wanted_tags()}
            fixes.append(
                Fix(
                    "tags",
                    lambda: s3.put_bucket_tagging(
                        Bucket=bucket,
                        Tagging={"TagSet": tags.as_list(merged)},
                    ),
                )
            )
        if self._get("get_public_access_block", "PublicAccessBlockConfiguration") != (
            PUBLIC_ACCESS_BLOCK
        ):
            fixes.append(
                Fix(
                    "public access block",
                    lambda: s3.put_public_access_block(
                        Bucket=bucket,
                        PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK,
                    ),
                )
            )
        controls = self._get("get_bucket_ownership_controls", "OwnershipControls") or {}
        if controls.get("Rules") != [{"ObjectOwnership": self.ownership}]:
            fixes.append(
                Fix(
                    "object ownership",
                    lambda: s3.put_bucket_ownership_controls(
                        Bucket=bucket,
                        OwnershipControls=self._ownership_controls(),
                    ),
                )
            )
        encryption = self._get("get_bucket_encryption", "ServerSideEncryptionConfiguration") or {}
        rules = encryption.get("Rules", [])
        if not any(
            r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
            in ("AES256", "aws:kms", "aws:kms:dsse")
            for r in rules
        ):
            fixes.append(
                Fix(
                    "encryption",
                    lambda: s3.put_bucket_encryption(
                        Bucket=bucket,
                        ServerSideEncryptionConfiguration=SSE_CONFIG,
                    ),
                )
            )
        return fixes

    def _ownership_controls(self) -> Any:
        return {"Rules": [{"ObjectOwnership": self.ownership}]}

    def _get(self, method: str, key: str) -> Any:
        """A bucket sub-resource, or None when it is not configured."""
        try:
            return getattr(self.env.clients.s3, method)(Bucket=self.bucket)[key]
        except ClientError as exc:
            if _absent(exc):
                return None
            raise

    def delete(self) -> None:
        s3, bucket = self.env.clients.s3, self.bucket
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            victims: Any = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if victims:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": victims, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)

    def describe(self) -> str:
        return f"s3://{self.bucket} ({self.env.region})"


class PixelBucket(Bucket):
    kind = "pixel-bucket"
    variable = "OPENS_INFRA_PIXEL_BUCKET"
    ownership = "BucketOwnerEnforced"

    @property
    def name(self) -> str:
        return self.env.infra.pixel_bucket

    def drift(self) -> list[Fix]:
        fixes = super().drift()
        if not self._gif_in_place():
            fixes.append(Fix(f"object {self.env.pixel_key}", self._put_gif))
        return fixes

    def _gif_in_place(self) -> bool:
        try:
            head = self.env.clients.s3.head_object(Bucket=self.bucket, Key=self.env.pixel_key)
        except ClientError as exc:
            if _absent(exc):
                return False
            raise
        return (
            head.get("ContentLength") == len(PIXEL_GIF)
            and head.get("ETag") == pixel_etag()
            and head.get("ContentType") == CONTENT_TYPE
            and head.get("CacheControl") == CACHE_CONTROL
        )

    def _put_gif(self) -> None:
        self.env.clients.s3.put_object(
            Bucket=self.bucket,
            Key=self.env.pixel_key,
            Body=PIXEL_GIF,
            ContentType=CONTENT_TYPE,
            CacheControl=CACHE_CONTROL,
        )


class LogBucket(Bucket):
    kind = "log-bucket"
    variable = "OPENS_INFRA_LOG_BUCKET"
    ownership = "BucketOwnerPreferred"  # ACLs on: CloudFront's log delivery needs a grant

    @property
    def name(self) -> str:
        return self.env.infra.log_bucket

    def drift(self) -> list[Fix]:
        fixes = super().drift()
        s3, bucket = self.env.clients.s3, self.bucket
        acl = s3.get_bucket_acl(Bucket=bucket)
        grantees = {
            g.get("Grantee", {}).get("ID")
            for g in acl.get("Grants", [])
            if g.get("Permission") == "FULL_CONTROL"
        }
        if LOG_DELIVERY_CANONICAL_ID not in grantees:
            owner = acl["Owner"]
            keep = [
                g
                for g in acl.get("Grants", [])
                if g.get("Grantee", {}).get("ID")
                not in (owner.get("ID"), LOG_DELIVERY_CANONICAL_ID)
            ]
            grants: Any = [*log_bucket_grants(str(owner.get("ID"))), *keep]
            fixes.append(
                Fix(
                    "log delivery ACL",
                    lambda: s3.put_bucket_acl(
                        Bucket=bucket,
                        AccessControlPolicy={"Owner": owner, "Grants": grants},
                    ),
                )
            )
        rules: list[dict[str, Any]] = self._get("get_bucket_lifecycle_configuration", "Rules") or []
        ours = self.lifecycle_rule()
        if ours not in [_comparable_rule(r) for r in rules]:
            others: Any = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
            fixes.append(
                Fix(
                    "lifecycle rule",
                    lambda: s3.put_bucket_lifecycle_configuration(
                        Bucket=bucket,
                        LifecycleConfiguration={"Rules": [*others, ours]},
                    ),
                )
            )
        return fixes

    def lifecycle_rule(self) -> Any:
        return {
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": self.env.infra.log_prefix},
            "Expiration": {"Days": self.env.infra.log_retention_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        }

    @property
    def domain(self) -> str:
        """How CloudFront's ``Logging.Bucket`` names it."""
        return f"{self.bucket}.s3.amazonaws.com"


def _comparable_rule(rule: dict[str, Any]) -> dict[str, Any]:
    keys = ("ID", "Status", "Filter", "Expiration", "AbortIncompleteMultipartUpload")
    return {k: rule[k] for k in keys if k in rule}


class PixelBucketPolicy(Resource):
    """The pixel bucket's policy: read by the distribution through origin access control.

    A step of its own because it names the distribution, which is created after the bucket.
    """

    kind = "pixel-bucket-policy"
    variable = "OPENS_INFRA_PIXEL_BUCKET"

    @property
    def name(self) -> str:
        return self.env.infra.pixel_bucket

    def _current(self) -> dict[str, Any] | None:
        try:
            raw = self.env.clients.s3.get_bucket_policy(Bucket=self.name)["Policy"]
        except ClientError as exc:
            if _absent(exc):
                return None
            raise
        policy: dict[str, Any] = json.loads(raw)
        return policy

    def wanted(self) -> dict[str, Any] | None:
        if self.env.distribution_arn is None:
            return None  # the distribution does not exist yet
        return pixel_bucket_policy(self.name, self.env.distribution_arn)

    def read(self) -> bool:
        return self._current() is not None

    def create(self) -> None:
        self._put()

    def _put(self) -> None:
        wanted = self.wanted()
        if wanted is None:
            msg = "the pixel bucket policy needs the distribution, which does not exist yet"
            raise InfraError(msg, resource=self.kind)
        self.env.clients.s3.put_bucket_policy(Bucket=self.name, Policy=json.dumps(wanted))

    def drift(self) -> list[Fix]:
        if self._current() != self.wanted():
            return [Fix("origin access policy", self._put)]
        return []

    def owned(self) -> bool:
        return PixelBucket(self.env).owned()

    def delete(self) -> None:
        self.env.clients.s3.delete_bucket_policy(Bucket=self.name)

    def describe(self) -> str:
        return "s3:GetObject for the distribution only"
