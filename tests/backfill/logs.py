"""Generated CloudFront standard logs and S3 access logs whose truth is known.

Each request is described by a ``Req`` (tests/core/render) and rendered the way CloudFront or S3
writes it. The truth comes from the requests themselves — which are hits, their signature (signed
with the right key, unsigned, or forged) and whether the agent is a machine — never from the
decoder under test.
"""

from __future__ import annotations

import dataclasses
import gzip
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from processor.core.context import DecodeContext
from processor.core.hit import Hit
from tests.core.render import Req, s3_line, standard_header, standard_line

SECRET = b"backfill-secret"
CTX = DecodeContext(secrets=(SECRET,))
HOUR_MS = 3_600_000
START_MS = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS  # an hour boundary (2025-11-24 16:00)
CAMPAIGNS = ("alpha", "beta", "gamma")
HUMAN_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
YAHOO_UA = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
DIST = "E2EXAMPLE7ABC"


@dataclass
class Request:
    """A generated request and what it must count as."""

    req: Req
    hit: bool  # a countable pixel hit (GET/HEAD, 200, sid+cid)
    signature: str
    machine: str | None
    fmt: str  # "standard" or "s3"

    def truth_hit(self) -> Hit:
        return Hit(
            request_id=self.req.request_id,
            ts_ms=self.req.ts_ms,
            source="standard" if self.fmt == "standard" else "s3",
            sid=self.req.sid,
            cid=self.req.cid,
            cat=self.req.cat,
            signature=self.signature,  # type: ignore[arg-type]
            method=self.req.method,
            status=self.req.status,
            uri=self.req.path,
            edge_location="",
            client_ip="",
            country="",
            user_agent="",
            client="",
            device="",
            machine=self.machine,
            referer="",
            bytes=0,
            time_taken=0.0,
        )


def make_requests(
    rnd: random.Random, n: int, *, hours: int = 4, fmt: str = "standard", start_ms: int = START_MS
) -> list[Request]:
    """``n`` requests over ``hours`` hours: most are hits, some are noise that must not count."""
    out = []
    for i in range(n):
        kind = rnd.random()
        sig_pick = rnd.choice(("valid", "valid", "missing", "invalid"))
        secret = {"valid": SECRET, "missing": None, "invalid": b"forged-key"}[sig_pick]
        method, ua, machine = "GET", HUMAN_UA, None
        if rnd.random() < 0.2:
            ua, machine = YAHOO_UA, None  # Yahoo's image proxy: a person's open
        elif rnd.random() < 0.1:
            method, machine = "HEAD", "unknown_bot"
        status, path, hit = 200, "/o.gif", True
        if kind < 0.05:
            status, hit = 404, False
        elif kind < 0.08:
            method, machine, hit = "POST", None, False
        elif kind < 0.12:
            path, hit = "/index.html", False
        req = Req(
            request_id=f"{fmt[:2]}{i:07d}{rnd.getrandbits(64):016x}==",
            ts_ms=start_ms + rnd.randrange(hours * 3600) * 1000,  # whole seconds, as logged
            sid=f"sub-{rnd.randrange(max(2, n // 4))}",
            cid=rnd.choice(CAMPAIGNS),
            cat=rnd.choice(("news", "promo")),
            method=method,
            status=status,
            user_agent=ua,
            path=path,
            secret=secret,
        )
        out.append(Request(req, hit, sig_pick if secret else "missing", machine, fmt))
    return out


def truth_hits(requests: list[Request]) -> list[Hit]:
    return [r.truth_hit() for r in requests if r.hit]


def realtime_truth_hits(requests: list[Request]) -> list[Hit]:
    """The hits as the real-time log reports them: the copy the schema keeps over a log line."""
    return [dataclasses.replace(h, source="realtime") for h in truth_hits(requests)]


def hour_name(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d-%H", time.gmtime(ts_ms // 1000))


@dataclass
class LogSet:
    """Files written for a set of requests: ``files[name] = (bytes, requests in it)``."""

    files: dict[str, tuple[bytes, list[Request]]] = field(default_factory=dict)

    def requests(self, names: list[str] | None = None) -> list[Request]:
        picked = self.files if names is None else {n: self.files[n] for n in names}
        return [r for _, reqs in picked.values() for r in reqs]

    def write_to(self, folder: Path) -> None:
        for name, (data, _) in self.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def cloudfront_files(
    requests: list[Request], *, prefix: str = "cf/", per_hour: int = 2, bad_every: int = 0
) -> LogSet:
    """Gzip standard logs named ``<prefix><dist>.<hour>.<id>.gz``, ``per_hour`` files an hour.

    ``bad_every``: every that-many lines, a line with the wrong field count is added.
    """
    by_hour: dict[str, list[Request]] = defaultdict(list)
    for r in requests:
        by_hour[hour_name(r.req.ts_ms)].append(r)
    out = LogSet()
    for hour, reqs in sorted(by_hour.items()):
        for part in range(per_hour):
            chunk = reqs[part::per_hour]
            lines = []
            for j, r in enumerate(chunk):
                lines.append(standard_line(r.req))
                if bad_every and j % bad_every == bad_every - 1:
                    lines.append("2025-11-24\t16:00:00\tFRA56-P1\t473")
            body = standard_header() + "\n".join(lines) + "\n"
            name = f"{prefix}{DIST}.{hour}.{part:04d}abcd.gz"
            out.files[name] = (gzip.compress(body.encode(), mtime=0), chunk)
    return out


def s3_access_files(requests: list[Request], *, partitioned: bool, prefix: str) -> LogSet:
    """Plain-text S3 access logs, one object per hour of requests, in either key layout."""
    by_hour: dict[str, list[Request]] = defaultdict(list)
    for r in requests:
        by_hour[hour_name(r.req.ts_ms)].append(r)
    out = LogSet()
    for hour, reqs in sorted(by_hour.items()):
        body = "".join(s3_line(r.req) + "\n" for r in reqs)
        day = hour[:10]
        if partitioned:
            # EventTime partitioning: the day folder and a 00-00-00 time.
            y, m, d = day.split("-")
            folder = f"{prefix}123456789012/us-east-1/pixel-bucket/{y}/{m}/{d}/"
            name = f"{folder}{day}-00-00-00-{hour[11:]}ABCDEF0123"
        else:
            # Simple prefix: named by delivery time, a few minutes after the hour ends.
            first = min(r.req.ts_ms for r in reqs)
            delivered = hour_name(first - first % HOUR_MS + HOUR_MS)
            name = f"{prefix}{delivered}-05-17-ABCDEF{hour[11:]}23456789"
        out.files[name] = (body.encode(), reqs)
    return out


def with_ms(requests: list[Request], rnd: random.Random) -> list[Request]:
    """The same requests with millisecond timestamps (what the real-time log carries)."""
    return [
        dataclasses.replace(
            r, req=dataclasses.replace(r.req, ts_ms=r.req.ts_ms + rnd.randrange(1000))
        )
        for r in requests
    ]
