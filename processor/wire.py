"""What travels on the Kafka topics, and which partition it goes to.

Hits go in batches, one message per target partition, as positional rows in ``HIT_FIELDS``
order: far cheaper to encode than one keyed message per hit, and the real-time path and the
backfill publish the same shape. Partitions follow Kafka's default partitioner on the
subscriber id, so one subscriber's hits always meet on one partition (and one worker).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from processor.core.hit import HIT_FIELDS, Hit, new_hit
from processor.dedupe import FirstOpen

WIRE_VERSION = 1


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, positive): what a keyed send would pick."""
    from aiokafka.partitioner import murmur2

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def hit_partition(hit: Hit, partitions: int) -> int:
    return murmur2_partition((hit.sid or "").encode(), partitions)


def hits_by_partition(hits: Iterable[Hit], partitions: int) -> dict[int, list[Hit]]:
    out: dict[int, list[Hit]] = defaultdict(list)
    for h in hits:
        out[hit_partition(h, partitions)].append(h)
    return out


def hits_message(hits: Iterable[Hit]) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "fields": len(HIT_FIELDS),
        "hits": [[getattr(h, f) for f in HIT_FIELDS] for h in hits],
    }


def hits_from_message(message: dict[str, Any]) -> list[Hit]:
    if message.get("v") != WIRE_VERSION or message.get("fields") != len(HIT_FIELDS):
        msg = f"unknown hits message version {message.get('v')!r}"
        raise ValueError(msg)
    return [new_hit(*row) for row in message["hits"]]


def first_opens_message(firsts: Iterable[FirstOpen]) -> dict[str, Any]:
    """The first-opens topic: one message per subscriber partition and batch.

    ``{"v": 1, "first_opens": [{"cid", "sid", "ts_ms", "request_id", "machine", "client"}, …]}``.
    A (campaign, subscriber) appears again only with an earlier ``ts_ms`` (a late standard log),
    and at-least-once delivery may repeat one, so consumers keep the minimum ``ts_ms`` per key.
    """
    return {"v": WIRE_VERSION, "first_opens": [f.to_json() for f in firsts]}
