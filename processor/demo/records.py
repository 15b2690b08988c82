"""Hand-made real-time records put straight into Kinesis (the walking skeleton's workload).

The tests of the Kinesis source and the worker's scale-out use these to feed a stream without
an edge; the demo itself sends its traffic through ``opens edge``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from processor.core.fields import canonical_order

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

UAS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
)


def render_realtime(fields: Iterable[str], values: Mapping[str, str]) -> bytes:
    """One CloudFront real-time record: selected fields in canonical order, `-` when empty."""
    return ("\t".join(values.get(f) or "-" for f in canonical_order(fields)) + "\n").encode()


@dataclass(frozen=True)
class Request:
    request_id: str
    ts: float
    sid: str
    cid: str
    path: str = "/o.gif"


def generate(n: int, seed: int = 7) -> list[Request]:
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    now = time.time()
    return [
        Request(
            request_id=uuid.UUID(int=rnd.getrandbits(128)).hex[:20] + "==",
            ts=round(now - rnd.uniform(0, 600), 3),
            sid=f"sub-{rnd.randint(1, 8)}",
            cid=rnd.choice(["welcome-2026", "black-friday"]),
        )
        for _ in range(n)
    ]


def record_for(req: Request, fields: Iterable[str], rnd: random.Random) -> bytes:
    query = f"sid={quote(req.sid)}&cid={quote(req.cid)}&cat=news"
    return render_realtime(
        fields,
        {
            "timestamp": f"{req.ts:.3f}",
            "c-ip": f"203.0.113.{rnd.randint(1, 254)}",
            "sc-status": "200",
            "sc-bytes": "43",
            "cs-method": "GET",
            "cs-uri-stem": f"{req.path}?{query}",
            "cs-uri-query": query,
            "x-edge-location": "FRA56-P1",
            "x-edge-request-id": req.request_id,
            "time-taken": "0.001",
            "cs-user-agent": quote(rnd.choice(UAS), safe="/;()"),
            "c-country": rnd.choice(["DE", "US", "FR"]),
        },
    )


def ensure_stream(kinesis: KinesisClient, name: str, shards: int = 1) -> None:
    """Create the stream unless it exists, and wait until it is active."""
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    except kinesis.exceptions.ResourceInUseException:
        return
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
