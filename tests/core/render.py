"""Render one request the way CloudFront / S3 would log it (test helper, not a decoder).

The CloudFront formats are rendered by ``processor.edge.render`` (what ``opens edge`` writes);
this module adapts the tests' ``Req`` to it and renders S3 access log lines.

Encoding rules follow reference/log-formats.md: the client percent-encodes query values; the
logs escape every ``%`` once more (``%`` → ``%25``) in query strings; the real-time user agent is
URL-encoded once; old standard logs encode it twice; S3 writes the request URI as sent and the
user agent raw inside quotes.
"""

from __future__ import annotations

import base64
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote

from processor.core.pixel import sign
from processor.edge import render
from processor.edge.logged import LoggedRequest


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
    scheme: str = "v1"  # "v2": the length-prefixed scheme (processor.core.pixel)

    def client_query(self) -> str:
        """The query string the email client sent."""
        if self.legacy:
            return f"subscriber={quote(self.sid, safe='')}&category={quote(self.cid, safe='')}"
        sid, cid, cat = (quote(v, safe="") for v in (self.sid, self.cid, self.cat))
        q = f"sid={sid}&cid={cid}&cat={cat}"
        if self.secret and self.scheme == "v2":
            q += f"&sig={sign(self.secret, self.sid, self.cid, self.cat, scheme='v2')}"
        elif self.secret:
            q += f"&sig={raw_v1_sig(self.secret, self.sid, self.cid, self.cat)}"
        return q

    def logged(self) -> LoggedRequest:
        """The same request as the edge logs it."""
        return LoggedRequest(
            request_id=self.request_id,
            ts_ms=self.ts_ms,
            method=self.method,
            path=self.path,
            query=self.client_query(),
            status=self.status,
            ip=self.ip,
            user_agent=self.user_agent,
            referer=self.referer,
            edge=self.edge,
            country=self.country,
            asn="3320",
            sc_bytes=self.nbytes,
            cs_bytes=312,
            time_taken=self.time_taken,
        )


def raw_v1_sig(secret: bytes, sid: str, cid: str, cat: str) -> str:
    """DESIGN §3's v1 ``sig`` for any values — also those ``sign`` refuses (a newline), as an
    old mailer or a forger would send them: such pixels must verify ``invalid``."""
    digest = hmac.digest(secret, f"v1\n{sid}\n{cid}\n{cat}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def logged_query(req: Req) -> str:
    """CloudFront escapes ``%`` once more in logged queries."""
    return render.logged_query(req.logged())


def _dash(value: str) -> str:
    return value if value else "-"


def realtime_record(req: Req, fields: tuple[str, ...], *, newline: bool = True) -> bytes:
    return render.realtime_record(req.logged(), fields, newline=newline)


def standard_line(req: Req, *, n_fields: int = 33, double_ua: bool = False, sep: str = "\t") -> str:
    """A legacy standard log line in the first ``n_fields`` columns of today's layout."""
    return render.standard_line(req.logged(), n_fields=n_fields, double_ua=double_ua, sep=sep)


standard_header = render.standard_header


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
