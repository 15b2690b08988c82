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

A hole that seeking cannot fill (messages deleted by retention, or offsets that never held a
record, such as transaction markers written by some other producer) is accepted after
``MAX_REWINDS`` attempts, loudly (logged and counted), instead of rewinding forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OFFSET_KEY = "\x00next-offset"  # the table key of a partition's record (never a subscriber key)
MAX_REWINDS = 5
REWIND_SECONDS = 2.0


def subscriber_key(sid: str) -> str:
    """Table key of a subscriber: prefixed, so no subscriber id can collide with ``OFFSET_KEY``."""
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
    """Bounded retries of one partition's hole (see the module docstring).

    Events already fetched past the hole keep arriving for a moment after a seek; those are
    dropped without seeking again, so attempts are spaced ``REWIND_SECONDS`` apart and a hole
    is accepted only after ``MAX_REWINDS`` spaced attempts failed to fill it.
    """

    expected: int = -1
    attempts: int = 0
    last: float = float("-inf")

    def decide(self, expected: int, now: float) -> str:
        """``"rewind"`` (seek back now), ``"wait"`` (a seek is in flight) or ``"accept"``."""
        if expected != self.expected:
            self.expected, self.attempts, self.last = expected, 0, float("-inf")
        if now - self.last < REWIND_SECONDS:
            return "wait"
        if self.attempts >= MAX_REWINDS:
            return "accept"
        self.attempts += 1
        self.last = now
        return "rewind"
