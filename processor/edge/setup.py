"""Build an ``Edge`` from the settings: clients from boto3's chain, the distribution from infra."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra import runner
from infra.errors import InfraError
from infra.resources.distribution import Distribution
from infra.settings import InfraSettings
from processor.edge.server import Edge, EdgeConfig
from processor.settings import Settings

log = logging.getLogger(__name__)

# Used when no distribution can be found (no `opens infra apply` yet): an id of CloudFront's
# shape, so the log object keys keep CloudFront's shape too.
DEV_DISTRIBUTION_ID = "E2EDGELOCALDEV"
DEV_DISTRIBUTION_DOMAIN = "d111111abcdef8.cloudfront.net"


def find_distribution(settings: Settings, infra: InfraSettings) -> tuple[str, str]:
    """``(id, domain)`` of the stack's distribution (or the attached one), else a stand-in."""
    try:
        env = runner.build_env(settings, infra)
        if Distribution(env).read() and env.distribution_id and env.distribution_domain:
            return env.distribution_id, env.distribution_domain
    except (InfraError, ClientError, BotoCoreError) as exc:
        log.warning("no distribution found (%s); logging as %s", exc, DEV_DISTRIBUTION_ID)
    return DEV_DISTRIBUTION_ID, DEV_DISTRIBUTION_DOMAIN


def build_edge(
    settings: Settings,
    infra: InfraSettings,
    *,
    distribution_id: str | None = None,
    **options: Any,
) -> Edge:
    """An edge logging to the settings' stream and the infra settings' log bucket/prefix.

    ``options`` are ``EdgeConfig`` fields (host, port, drop_realtime, seed, flush_seconds …).
    """
    if distribution_id:
        dist_id, domain = distribution_id, DEV_DISTRIBUTION_DOMAIN
    else:
        dist_id, domain = find_distribution(settings, infra)
    config = EdgeConfig(
        stream=settings.kinesis_stream,
        log_bucket=infra.log_bucket,
        log_prefix=infra.log_prefix,
        distribution_id=dist_id,
        distribution_domain=domain,
        pixel_path=settings.pixel_path,
        fields=settings.realtime_fields,
        **options,
    )
    return Edge(config, boto3.client("kinesis"), boto3.client("s3"))
