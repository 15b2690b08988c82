"""CloudFront real-time log fields, declared once.

``CANONICAL_REALTIME_FIELDS`` is CloudFront's own delivery order. A real-time record carries the
selected fields in *this* order, whatever order the log configuration lists them in, so both the
decoder (positions) and the infra module (the configuration's field list) derive from it.
"""

from __future__ import annotations

from collections.abc import Iterable

CANONICAL_REALTIME_FIELDS: tuple[str, ...] = (
    "timestamp",
    "c-ip",
    "s-ip",
    "time-to-first-byte",
    "sc-status",
    "sc-bytes",
    "cs-method",
    "cs-protocol",
    "cs-host",
    "cs-uri-stem",
    "cs-bytes",
    "x-edge-location",
    "x-edge-request-id",
    "x-host-header",
    "time-taken",
    "cs-protocol-version",
    "c-ip-version",
    "cs-user-agent",
    "cs-referer",
    "cs-cookie",
    "cs-uri-query",
    "x-edge-response-result-type",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-result-type",
    "fle-encrypted-fields",
    "fle-status",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
    "c-port",
    "x-edge-detailed-result-type",
    "c-country",
    "cs-accept-encoding",
    "cs-accept",
    "cache-behavior-path-pattern",
    "cs-headers",
    "cs-header-names",
    "cs-headers-count",
    "primary-distribution-id",
    "primary-distribution-dns-name",
    "origin-fbl",
    "origin-lbl",
    "asn",
    "cmcd-encoded-bitrate",
    "cmcd-buffer-length",
    "cmcd-buffer-starvation",
    "cmcd-content-id",
    "cmcd-object-duration",
    "cmcd-deadline",
    "cmcd-measured-throughput",
    "cmcd-next-object-request",
    "cmcd-next-range-request",
    "cmcd-object-type",
    "cmcd-playback-rate",
    "cmcd-requested-maximum-throughput",
    "cmcd-streaming-format",
    "cmcd-session-id",
    "cmcd-stream-type",
    "cmcd-startup",
    "cmcd-top-bitrate",
    "cmcd-version",
    "r-host",
    "sr-reason",
    "x-edge-mqcs",
    "distribution-tenant-id",
    "connection-id",
)

_RANK = {name: i for i, name in enumerate(CANONICAL_REALTIME_FIELDS)}

# What an open needs, and no more: every extra field costs Kinesis bytes on every request.
DEFAULT_REALTIME_FIELDS: tuple[str, ...] = (
    "timestamp",
    "c-ip",
    "time-to-first-byte",
    "sc-status",
    "sc-bytes",
    "cs-method",
    "cs-uri-stem",
    "x-edge-location",
    "x-edge-request-id",
    "time-taken",
    "cs-user-agent",
    "cs-referer",
    "cs-uri-query",
    "x-forwarded-for",
    "x-edge-result-type",
    "c-country",
    "asn",
)

# Without these a record cannot become a hit (the query may come from either URI field).
REQUIRED_REALTIME_FIELDS: frozenset[str] = frozenset(
    {"timestamp", "x-edge-request-id", "sc-status", "cs-method"}
)


class UnknownFieldError(ValueError):
    """A field name that CloudFront's real-time logs do not have."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        super().__init__(f"unknown real-time log field(s): {', '.join(self.names)}")


def canonical_order(selected: Iterable[str]) -> tuple[str, ...]:
    """The selected fields in the order CloudFront delivers them; duplicates removed."""
    names = {name.strip() for name in selected if name.strip()}
    unknown = sorted(names - _RANK.keys())
    if unknown:
        raise UnknownFieldError(unknown)
    return tuple(sorted(names, key=_RANK.__getitem__))


# Standard (legacy W3C) log fields in file order. CloudFront only ever appended fields, so a file
# with no ``#Fields:`` header is read as the first N of these (12 in 2012 … 33 since 2019).
STANDARD_FIELDS: tuple[str, ...] = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
)
