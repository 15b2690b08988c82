"""boto3 clients for one run, and the translation of AWS errors into the project's own.

Credentials and endpoints come from boto3's normal chain (environment, profile, instance role;
``AWS_ENDPOINT_URL`` for an emulator); nothing here reads the project's files for them.
CloudFront is a global service whose API lives in us-east-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from infra.errors import AwsCallFailed, InfraError

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

CLOUDFRONT_REGION = "us-east-1"
DEFAULT_REGION = "us-east-1"
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass(frozen=True)
class Clients:
    """One client per service; tests swap single ones for a ``Stubber``-wrapped client."""

    s3: S3Client
    kinesis: KinesisClient
    iam: IAMClient
    cloudfront: CloudFrontClient
    cloudwatch: CloudWatchClient
    sts: STSClient
    region: str


def make_clients(region: str | None) -> Clients:
    session = boto3.session.Session(region_name=region)
    resolved = session.region_name or DEFAULT_REGION
    return Clients(
        s3=session.client("s3", region_name=resolved, config=_CONFIG),
        kinesis=session.client("kinesis", region_name=resolved, config=_CONFIG),
        iam=session.client("iam", region_name=resolved, config=_CONFIG),
        cloudfront=session.client("cloudfront", region_name=CLOUDFRONT_REGION, config=_CONFIG),
        cloudwatch=session.client("cloudwatch", region_name=resolved, config=_CONFIG),
        sts=session.client("sts", region_name=resolved, config=_CONFIG),
        region=resolved,
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def api_missing(exc: ClientError) -> bool:
    """The endpoint has no such API: a bare HTTP 404 with no AWS error code of its own.

    AWS answers a missing *resource* with a named code (``NoSuchRealtimeLogConfig``); an
    emulator without the API answers its generic 404 page, which botocore reports as code
    ``404`` / ``NotFound``.
    """
    return http_status(exc) == 404 and error_code(exc) in {"404", "NotFound", "Not Found", ""}


@contextmanager
def aws_errors(resource: str) -> Iterator[None]:
    """Turn boto errors into one-line ``InfraError``s naming the step that failed."""
    try:
        yield
    except ClientError as exc:
        op = str(getattr(exc, "operation_name", "") or "call")
        code = error_code(exc) or str(http_status(exc))
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        msg = f"{resource}: {op} refused: {code}: {message}"
        raise AwsCallFailed(
            msg,
            resource=resource,
            operation=op,
            code=code,
            hint="re-run apply once the cause is fixed; it continues where it stopped",
        ) from None
    except NoCredentialsError:
        msg = "no AWS credentials found"
        raise InfraError(
            msg,
            resource=resource,
            hint="configure boto3's chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws, a role)",
        ) from None
    except NoRegionError:
        msg = "no AWS region configured"
        raise InfraError(msg, resource=resource, hint="set OPENS_INFRA_REGION") from None
    except EndpointConnectionError as exc:
        msg = f"cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}"
        raise InfraError(
            msg,
            resource=resource,
            hint="check AWS_ENDPOINT_URL and the network (is the local stack up?)",
        ) from None
    except BotoCoreError as exc:
        msg = f"{resource}: {exc}"
        raise InfraError(msg, resource=resource) from None
