"""Pure builders and edits of CloudFront ``DistributionConfig`` documents (no I/O).

Caching: the pixel behaviour uses legacy cache settings (``ForwardedValues`` + TTLs) instead of a
cache policy, which would need the cache-policy API (absent from moto). With ``MinTTL`` > 0 the
edge keeps the GIF despite its ``no-store`` header, so opens cost no S3 request, while viewers
still get ``no-cache, no-store`` and come back on every open. Real-time and standard logs record
every *viewer* request, cache hit or not, with the full query string; the query string is
therefore not forwarded and not part of the cache key.
"""

from __future__ import annotations

import copy
from typing import Any

ORIGIN_ID = "opens-pixel-bucket"
EDGE_TTL = 86_400
MAX_TTL = 31_536_000

Config = dict[str, Any]


def comment(stack: str) -> str:
    """What ``list_distributions`` shows; how apply finds the distribution it created."""
    return f"cloudfront-opens pixel ({stack})"


def _methods() -> Config:
    return {
        "Quantity": 2,
        "Items": ["GET", "HEAD"],
        "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]},
    }


def behavior(origin_id: str) -> Config:
    """A GET/HEAD behaviour serving the GIF from the pixel bucket, cached at the edge."""
    return {
        "TargetOriginId": origin_id,
        "ViewerProtocolPolicy": "allow-all",  # old mails carry http:// pixels; no redirect hop
        "AllowedMethods": _methods(),
        "SmoothStreaming": False,
        "Compress": False,
        "LambdaFunctionAssociations": {"Quantity": 0},
        "FunctionAssociations": {"Quantity": 0},
        "FieldLevelEncryptionId": "",
        "TrustedSigners": {"Enabled": False, "Quantity": 0},
        "TrustedKeyGroups": {"Enabled": False, "Quantity": 0},
        "ForwardedValues": {
            "QueryString": False,
            "Cookies": {"Forward": "none"},
            "Headers": {"Quantity": 0},
            "QueryStringCacheKeys": {"Quantity": 0},
        },
        "MinTTL": EDGE_TTL,
        "DefaultTTL": EDGE_TTL,
        "MaxTTL": MAX_TTL,
    }


def pixel_behavior(base: Config, path_pattern: str, realtime_arn: str | None) -> Config:
    """``base`` (a default or existing behaviour) for the pixel path, with real-time logs."""
    out = copy.deepcopy(base)
    out["PathPattern"] = path_pattern
    out["RealtimeLogConfigArn"] = realtime_arn or ""
    return out


def s3_origin(bucket: str, region: str, oac_id: str) -> Config:
    return {
        "Id": ORIGIN_ID,
        "DomainName": f"{bucket}.s3.{region}.amazonaws.com",
        "OriginPath": "",
        "CustomHeaders": {"Quantity": 0},
        "S3OriginConfig": {"OriginAccessIdentity": ""},
        "OriginAccessControlId": oac_id,
    }


def logging(log_bucket: str, prefix: str) -> Config:
    return {
        "Enabled": True,
        "IncludeCookies": False,
        "Bucket": f"{log_bucket}.s3.amazonaws.com",
        "Prefix": prefix,
    }


def new_config(
    *,
    caller_reference: str,
    stack: str,
    origin: Config,
    pixel_path: str,
    realtime_arn: str | None,
    log: Config,
    price_class: str,
) -> Config:
    default = behavior(origin["Id"])
    return {
        "CallerReference": caller_reference,
        "Comment": comment(stack),
        "Enabled": True,
        "Aliases": {"Quantity": 0},
        "DefaultRootObject": "",
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": default,
        "CacheBehaviors": {
            "Quantity": 1,
            "Items": [pixel_behavior(default, pixel_path, realtime_arn)],
        },
        "CustomErrorResponses": {"Quantity": 0},
        "Logging": log,
        "PriceClass": price_class,
        "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
        "HttpVersion": "http2and3",
        "IsIPV6Enabled": True,
    }


def same_path(a: str, b: str) -> bool:
    """CloudFront path patterns match with or without the leading slash."""
    return a.lstrip("/") == b.lstrip("/")


def find_behavior(config: Config, path_pattern: str) -> Config | None:
    for item in config.get("CacheBehaviors", {}).get("Items", []) or []:
        if same_path(str(item.get("PathPattern", "")), path_pattern):
            found: Config = item
            return found
    return None


def set_behaviors(config: Config, items: list[Config]) -> None:
    config["CacheBehaviors"] = (
        {"Quantity": len(items), "Items": items} if items else {"Quantity": 0}
    )


def put_pixel_behavior(config: Config, path_pattern: str, realtime_arn: str | None) -> str:
    """Make the pixel path's behaviour log in real time; returns ``added`` or ``modified``.

    An existing behaviour for the path keeps everything but its real-time log config; a new one
    copies the default behaviour, so the pixel is served exactly as before.
    """
    existing = find_behavior(config, path_pattern)
    if existing is not None:
        existing["RealtimeLogConfigArn"] = realtime_arn or ""
        return "modified"
    items = list(config.get("CacheBehaviors", {}).get("Items", []) or [])
    # First match wins: the specific pixel path goes before any wildcard pattern.
    items.insert(0, pixel_behavior(config["DefaultCacheBehavior"], path_pattern, realtime_arn))
    set_behaviors(config, items)
    return "added"


def remove_behavior(config: Config, path_pattern: str) -> None:
    items = [
        item
        for item in config.get("CacheBehaviors", {}).get("Items", []) or []
        if not same_path(str(item.get("PathPattern", "")), path_pattern)
    ]
    set_behaviors(config, items)


def put_origin(config: Config, origin: Config) -> None:
    items = [o for o in config["Origins"].get("Items", []) if o["Id"] != origin["Id"]]
    items.insert(0, origin)
    config["Origins"] = {"Quantity": len(items), "Items": items}


def find_origin(config: Config, origin_id: str) -> Config | None:
    for item in config.get("Origins", {}).get("Items", []):
        if item.get("Id") == origin_id:
            found: Config = item
            return found
    return None


# How CloudFront expresses "standard logging off" (the keys stay, empty).
LOGGING_OFF: Config = {"Enabled": False, "IncludeCookies": False, "Bucket": "", "Prefix": ""}
