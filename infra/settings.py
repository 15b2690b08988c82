"""Settings of the infra module: ``OPENS_INFRA_*`` (names, region, stream mode, KMS key …).

Separate from ``processor.settings.Settings`` on purpose: the pipeline never needs bucket names,
and provisioning never needs ClickHouse. What both need — the stream name, the real-time field
list, the pixel path — is read from ``Settings`` only, so there is one place for each.

The real-time field list has no infra-side "extras": CloudFront delivers the selected fields in
its canonical order, so a field configured here but unknown to the decoder would shift every
later position. Add fields through ``OPENS_REALTIME_FIELDS``, which both sides read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processor.settings import build_settings

ENV_PREFIX = "OPENS_INFRA_"

# S3 bucket naming rules (lower case, digits, dots, hyphens; 3-63 characters).
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# IAM role names and CloudFront resource names accept a little more, but these keep them portable.
_NAME = r"^[A-Za-z0-9_+=,.@-]{1,64}$"

PriceClass = Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"]


class InfraSettings(BaseSettings):
    """What ``opens infra`` provisions. Field names map to ``OPENS_INFRA_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        frozen=True,
        extra="ignore",
    )

    stack: str = Field(
        "opens",
        pattern=r"^[A-Za-z0-9-]{1,32}$",
        description="tag value (opens:stack) that marks what this stack created",
    )
    region: str | None = Field(
        None, description="region of the buckets and the stream (default: boto3's own chain)"
    )
    pixel_bucket: str = Field("opens-pixel", pattern=_BUCKET)
    log_bucket: str = Field("opens-logs", pattern=_BUCKET)
    log_prefix: str = Field("cloudfront/", max_length=256)
    log_retention_days: int = Field(90, ge=1, le=36500, description="standard logs expire after")
    stream_mode: Literal["on-demand", "provisioned"] = "on-demand"
    shard_count: int = Field(1, ge=1, le=10000, description="shards when stream_mode=provisioned")
    kms_key_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$",
        description="customer KMS key for the stream (default: the AWS-managed alias/aws/kinesis)",
    )
    role_name: str = Field("opens-cloudfront-realtime-logs", pattern=_NAME)
    realtime_log_config: str = Field("opens-pixel-realtime", pattern=_NAME)
    origin_access_control: str = Field("opens-pixel-oac", pattern=_NAME)
    distribution_id: str | None = Field(
        None,
        pattern=r"^[A-Z0-9]{8,20}$",
        description="attach to this existing distribution instead of creating one",
    )
    price_class: PriceClass = "PriceClass_100"
    deploy_timeout: float = Field(
        1800.0, gt=0, description="seconds to wait for CloudFront to deploy a change"
    )
    poll_interval: float = Field(15.0, gt=0, le=300)

    @property
    def attach(self) -> bool:
        """True when an existing distribution is attached rather than one created."""
        return self.distribution_id is not None

    @property
    def kinesis_key(self) -> str:
        """The key id the stream is encrypted with."""
        return self.kms_key_arn or "alias/aws/kinesis"


def load_infra_settings(**overrides: Any) -> InfraSettings:
    """The infra settings (``OPENS_INFRA_*``); a bad value names its variable."""
    return build_settings(InfraSettings, ENV_PREFIX, **overrides)
