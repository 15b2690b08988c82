"""Which hits-topic messages a batch may process: the worker keeps its own offsets.

Faust commits a partition's offset from the events it has acknowledged, and around a rebalance
it acknowledges events it never handed to the agent: an event fetched under the previous
consumer generation, or while flow is suspended, is *skipped and acked* (``faust/streams.py``,
"Skipping message … generation_id"). The committed offset then passes messages that nobody
processed, and they are lost. It happened in CI: a worker that took over a killed worker's
partitions skipped nine messages of each (tests/test_worker_scaleout.py).

So the store agent does not trust the committed offset. With every batch it stores, in the
subscriber table's own partition (same RocksDB database, same changelog partition, written
after ClickHouse acked), the next offset it expects on that partition. Each batch is then
checked against it:

- an event below it was already processed (a replay after a rebalance or a crash): dropped;
- the event at it is processed and the expectation moves on;
- an event above it means messages were skipped: the agent processes nothing past the hole and
  seeks the partition back to the expected offset, so the skipped messages come again.

A seek can be undone (records Faust had already fetched keep arriving after it and move its read
position past the re-fetched ones), so a hole that is still there is sought again, every
``REWIND_SECONDS``, for as long as it takes. The only hole ever passed is one Kafka proves
empty: offsets deleted by retention before any worker processed them, which is logged and
counted because those opens are lost to every number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

REWIND_SECONDS = 2.0
LOUD_AFTER = 5  # rewinds of one hole before each further one is logged as an error


def offset_key(partition: int) -> str:
    """Table key of a partition's record. The partition is in the key as well because a table
    store that is not partitioned (``memory://``) keeps all partitions in one dictionary."""
    return f"\x00next-offset:{partition}"


def subscriber_key(sid: str) -> str:
    """Table key of a subscriber: prefixed, so no subscriber id can collide with an offset key."""
    return "s:" + sid


@dataclass(frozen=True)
class Plan:
    """What to do with one partition's events of a batch (indexes into the sorted offsets)."""

    keep: list[int]  # indexes of events to process, in offset order
    replayed: int  # events at offsets already processed
    next_offset: int  # the expectation after the kept events
    hole: int | None  # an offset that is missing: seek back to it (None: no hole)


def plan(offsets: Sequence[int], expected: int) -> Plan:
    """``offsets``: one partition's event offsets in the order delivered; ``expected``: the next
    offset not yet processed. Pure, so the whole contract is property-tested."""
    keep: list[int] = []
    replayed = 0
    nxt = expected
    for i in sorted(range(len(offsets)), key=offsets.__getitem__):
        o = offsets[i]
        if o < nxt:
            replayed += 1
        elif o == nxt:
            keep.append(i)
            nxt += 1
        else:
            return Plan(keep, replayed, nxt, nxt)
    return Plan(keep, replayed, nxt, None)


@dataclass
class Rewinds:
    """Spacing of one partition's seeks back (see the module docstring).

    Events already fetched past the hole keep arriving for a moment after a seek; those are
    dropped without seeking again, so seeks to one hole are ``REWIND_SECONDS`` apart.
    """

    expected: int = -1
    attempts: int = 0
    last: float = float("-inf")

    def due(self, expected: int, now: float) -> bool:
        """True when a seek back to ``expected`` should be issued now."""
        if expected != self.expected:
            self.expected, self.attempts, self.last = expected, 0, float("-inf")
        if now - self.last < REWIND_SECONDS:
            return False
        self.attempts += 1
        self.last = now
        return True
