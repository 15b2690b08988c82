"""Render one request the way CloudFront / S3 would log it (test helper, not a decoder).

Encoding rules follow reference/log-formats.md: the client percent-encodes query values; the
logs escape every ``%`` once more (``%`` → ``%25``) in query strings; the real-time user agent is
URL-encoded once; old standard logs encode it twice; S3 writes the request URI as sent and the
user agent raw inside quotes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from processor.core.fields import STANDARD_FIELDS, canonical_order
from processor.core.pixel import sign

_UA_SAFE = "/;(),:+=!*'~@&$[]"


@dataclass(frozen=True)
class Req:
    """A request for the pixel as a test describes it (values as the client meant them)."""

    request_id: str
    ts_ms: int
    sid: str
    cid: str
    cat: str
    method: str = "GET"
    status: int = 200
    ip: str = "192.0.2.10"
    user_agent: str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
    referer: str = ""
    edge: str = "FRA56-P1"
    country: str = "DE"
    nbytes: int = 473
    time_taken: float = 0.012
    path: str = "/o.gif"
    secret: bytes | None = None
    legacy: bool = False

    def client_query(self) -> str:
        """The query string the email client sent."""
        if self.legacy:
            return f"subscriber={quote(self.sid, safe='')}&category={quote(self.cid, safe='')}"
        sid, cid, cat = (quote(v, safe="") for v in (self.sid, self.cid, self.cat))
        q = f"sid={sid}&cid={cid}&cat={cat}"
        if self.secret:
            q += f"&sig={sign(self.secret, self.sid, self.cid, self.cat)}"
        return q


def logged_query(req: Req) -> str:
    """CloudFront escapes ``%`` once more in logged queries."""
    return req.client_query().replace("%", "%25")


def _dash(value: str) -> str:
    return value if value else "-"


def realtime_record(req: Req, fields: tuple[str, ...], *, newline: bool = True) -> bytes:
    q = logged_query(req)
    values = {
        "timestamp": f"{req.ts_ms // 1000}.{req.ts_ms % 1000:03d}",
        "c-ip": _dash(req.ip),
        "s-ip": "65.8.177.136",
        "time-to-first-byte": f"{req.time_taken:.3f}",
        "sc-status": f"{req.status:03d}",
        "sc-bytes": str(req.nbytes),
        "cs-method": req.method,
        "cs-protocol": "https",
        "cs-host": "px.example.com",
        "cs-uri-stem": f"{req.path}?{q}",
        "cs-bytes": "312",
        "x-edge-location": req.edge,
        "x-edge-request-id": req.request_id,
        "x-host-header": "d111111abcdef8.cloudfront.net",
        "time-taken": f"{req.time_taken:.3f}",
        "cs-protocol-version": "HTTP/2.0",
        "c-ip-version": "IPv6" if ":" in req.ip else "IPv4",
        "cs-user-agent": _dash(quote(req.user_agent, safe=_UA_SAFE)),
        "cs-referer": _dash(req.referer),
        "cs-uri-query": q,
        "c-country": _dash(req.country),
        "asn": "3320",
        "cs-headers": "Host:px.example.com%0AUser-Agent:"
        + quote(req.user_agent, safe=_UA_SAFE)
        + "%0A",
        "cs-header-names": "Host%0AUser-Agent%0A",
        "cs-headers-count": "2",
    }
    line = "\t".join(values.get(name, "-") for name in canonical_order(fields))
    return (line + ("\n" if newline else "")).encode()


def standard_line(req: Req, *, n_fields: int = 33, double_ua: bool = False, sep: str = "\t") -> str:
    """A legacy standard log line in the first ``n_fields`` columns of today's layout."""
    t = time.gmtime(req.ts_ms // 1000)
    ua = quote(req.user_agent, safe=_UA_SAFE)
    if double_ua:
        ua = quote(ua, safe=_UA_SAFE)
    values = {
        "date": time.strftime("%Y-%m-%d", t),
        "time": time.strftime("%H:%M:%S", t),
        "x-edge-location": req.edge,
        "sc-bytes": str(req.nbytes),
        "c-ip": _dash(req.ip),
        "cs-method": req.method,
        "cs(Host)": "d111111abcdef8.cloudfront.net",
        "cs-uri-stem": req.path,
        "sc-status": f"{req.status:03d}",
        "cs(Referer)": _dash(req.referer),
        "cs(User-Agent)": _dash(ua),
        "cs-uri-query": logged_query(req),
        "x-edge-request-id": req.request_id,
        "x-host-header": "px.example.com",
        "cs-protocol": "https",
        "time-taken": f"{req.time_taken:.3f}",
        "x-edge-result-type": "Hit",
        "sc-content-type": "image/gif",
        "sc-content-len": "43",
    }
    return sep.join(values.get(name, "-") for name in STANDARD_FIELDS[:n_fields])


def standard_header(n_fields: int = 33) -> str:
    return "#Version: 1.0\n#Fields: " + " ".join(STANDARD_FIELDS[:n_fields]) + "\n"


def s3_line(req: Req, *, n_fields: int = 26) -> str:
    t = time.gmtime(req.ts_ms // 1000)
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t)
    ua = req.user_agent.replace('"', '\\"')
    fields = [
        "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
        "pixel-bucket",
        f"[{stamp}]",
        _dash(req.ip),
        "-",
        req.request_id,
        f"REST.{req.method}.OBJECT",
        req.path.lstrip("/"),
        f'"{req.method} {req.path}?{req.client_query()} HTTP/1.1"',
        f"{req.status:03d}",
        "-",
        str(req.nbytes),
        "43",
        str(round(req.time_taken * 1000)),
        "1",
        f'"{_dash(req.referer)}"',
        f'"{_dash(ua)}"',
        "-",
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234=",
        "SigV4",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "-",
        "pixel-bucket.s3.us-east-1.amazonaws.com",
        "TLSv1.3",
        "-",
        "-",
        "us-east-1",
    ]
    return " ".join(fields[:n_fields])
