"""Render a ``LoggedRequest`` the way CloudFront logs it — the inverse of the decoders.

Encoding rules (reference/log-formats.md): the query is logged with CloudFront's extra escaping
of ``%`` (a client's ``%26`` is logged ``%2526``); the user agent is URL-encoded once (today's
files; ``double_ua`` renders the 2013-2020 double encoding); the referer is logged raw; an empty
or not-applicable value is ``-``. Real-time records carry the selected fields in CloudFront's
canonical order, TAB-separated, ending in a newline, and ``cs-uri-stem`` includes the query.
Standard log lines follow the ``#Fields`` layout (today's 33 fields), TAB-separated.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import quote

from processor.core.fields import STANDARD_FIELDS, canonical_order
from processor.edge.logged import LoggedRequest

__all__ = ["logged_query", "realtime_record", "standard_header", "standard_line"]

# Characters CloudFront leaves as they are in a logged user agent.
_UA_SAFE = "/;(),:+=!*'~@&$[]"


def _dash(value: str) -> str:
    return value if value else "-"


def logged_query(req: LoggedRequest) -> str:
    """CloudFront escapes ``%`` once more in logged queries."""
    return req.query.replace("%", "%25")


def _agent(req: LoggedRequest) -> str:
    return quote(req.user_agent, safe=_UA_SAFE)


def _headers(req: LoggedRequest) -> tuple[tuple[str, str], ...]:
    if req.headers:
        return req.headers
    return (("Host", req.host), ("User-Agent", req.user_agent))


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def realtime_values(req: LoggedRequest) -> dict[str, str]:
    """Every real-time field CloudFront would fill for this request (others are ``-``)."""
    q = logged_query(req)
    headers = _headers(req)
    return {
        "timestamp": f"{req.ts_ms // 1000}.{req.ts_ms % 1000:03d}",
        "c-ip": _dash(req.ip),
        "s-ip": _dash(req.server_ip),
        "time-to-first-byte": _seconds(req.time_to_first_byte or req.time_taken),
        "sc-status": f"{req.status:03d}",
        "sc-bytes": str(req.sc_bytes),
        "cs-method": _dash(req.method),
        "cs-protocol": req.protocol,
        "cs-host": _dash(req.host),
        "cs-uri-stem": f"{req.path}?{q}" if q else req.path,
        "cs-bytes": str(req.cs_bytes),
        "x-edge-location": _dash(req.edge),
        "x-edge-request-id": req.request_id,
        "x-host-header": req.distribution_domain,
        "time-taken": _seconds(req.time_taken),
        "cs-protocol-version": req.protocol_version,
        "c-ip-version": "IPv6" if ":" in req.ip else "IPv4",
        "cs-user-agent": _dash(_agent(req)),
        "cs-referer": _dash(req.referer),
        "cs-uri-query": _dash(q),
        "x-edge-response-result-type": req.result_type,
        "x-forwarded-for": _dash(req.forwarded_for),
        "x-edge-result-type": req.result_type,
        "sc-content-type": _dash(req.content_type),
        "sc-content-len": "-" if req.content_len is None else str(req.content_len),
        "c-port": str(req.client_port) if req.client_port else "-",
        "x-edge-detailed-result-type": req.result_type,
        "c-country": _dash(req.country),
        "cache-behavior-path-pattern": req.path if req.path.endswith(".gif") else "*",
        "cs-headers": "".join(
            f"{name}:{quote(value, safe=_UA_SAFE)}%0A" for name, value in headers
        ),
        "cs-header-names": "".join(f"{name}%0A" for name, _ in headers),
        "cs-headers-count": str(len(headers)),
        "asn": _dash(req.asn),
    }


def realtime_record(req: LoggedRequest, fields: Iterable[str], *, newline: bool = True) -> bytes:
    """One Kinesis record: the selected fields in canonical order, TAB-separated."""
    values = realtime_values(req)
    line = "\t".join(values.get(name, "-") for name in canonical_order(fields))
    return (line + ("\n" if newline else "")).encode()


def standard_header(n_fields: int = 33) -> str:
    """The two header lines a standard log file starts with."""
    return "#Version: 1.0\n#Fields: " + " ".join(STANDARD_FIELDS[:n_fields]) + "\n"


def standard_line(
    req: LoggedRequest, *, n_fields: int = 33, double_ua: bool = False, sep: str = "\t"
) -> str:
    """A legacy standard log line in the first ``n_fields`` columns of today's layout."""
    t = time.gmtime(req.ts_ms // 1000)
    ua = _agent(req)
    if double_ua:
        ua = quote(ua, safe=_UA_SAFE)
    values = {
        "date": time.strftime("%Y-%m-%d", t),
        "time": time.strftime("%H:%M:%S", t),
        "x-edge-location": _dash(req.edge),
        "sc-bytes": str(req.sc_bytes),
        "c-ip": _dash(req.ip),
        "cs-method": _dash(req.method),
        "cs(Host)": req.distribution_domain,
        "cs-uri-stem": req.path,
        "sc-status": f"{req.status:03d}",
        "cs(Referer)": _dash(req.referer),
        "cs(User-Agent)": _dash(ua),
        "cs-uri-query": _dash(logged_query(req)),
        "x-edge-result-type": req.result_type,
        "x-edge-request-id": req.request_id,
        "x-host-header": _dash(req.host),
        "cs-protocol": req.protocol,
        "cs-bytes": str(req.cs_bytes),
        "time-taken": _seconds(req.time_taken),
        "x-forwarded-for": _dash(req.forwarded_for),
        "x-edge-response-result-type": req.result_type,
        "cs-protocol-version": req.protocol_version,
        "c-port": str(req.client_port) if req.client_port else "-",
        "time-to-first-byte": _seconds(req.time_to_first_byte or req.time_taken),
        "x-edge-detailed-result-type": req.result_type,
        "sc-content-type": _dash(req.content_type),
        "sc-content-len": "-" if req.content_len is None else str(req.content_len),
    }
    return sep.join(values.get(name, "-") for name in STANDARD_FIELDS[:n_fields])
