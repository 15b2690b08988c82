"""The store agent's offset guard: the Kafka side of processor.offsets.

Holds, per hits partition, the next offset the worker has not processed (a record in the
subscriber table, so it lives in that partition's RocksDB database and changelog and moves to
whichever worker owns the partition), decides per batch which events may be processed, seeks
back over skipped offsets, and — because a hole at the *end* of a partition is only noticed when
a later message arrives — checks idle partitions against their high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from processor.backoff import backoff_delay
from processor.metrics import Metrics
from processor.offsets import OFFSET_KEY, Plan, Rewinds, plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Message:
    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> Any:
        from faust.types import TP

        return TP(self.topic, self.partition)


@dataclass(frozen=True)
class PartitionEvent:
    """Stands in for an event of ``partition`` where there is none (the idle check): Faust's
    table store only reads ``event.message.partition`` to pick the partition's database."""

    message: _Message


class OffsetGuard:
    def __init__(
        self,
        app: Any,
        table: Any,
        topic: str,
        metrics: Metrics,
        make_current: Callable[[Any], None],
    ) -> None:
        self.app = app
        self.table = table
        self.topic = topic
        self.metrics = metrics
        self.make_current = make_current
        self.rewinds: dict[int, Rewinds] = {}
        self.last_seen: dict[int, float] = {}  # partition → monotonic time of its last event
        self.busy = False  # a batch is between delivery and its stored offsets

    async def expected(self, event: Any) -> int:
        """The next offset of the event's partition not yet processed: our record, or the
        partition's first offset when nothing was ever processed there."""
        self.make_current(event)
        record = self.table.get(OFFSET_KEY)
        if record is not None:
            return int(record["next"])
        return await self._earliest(event.message.tp)

    async def _earliest(self, tp: Any) -> int:
        """The partition's first offset, asked until Kafka answers: the batch waits meanwhile
        (backpressure) rather than crash the agent."""
        attempt = 0
        while True:
            try:
                return int((await self.app.consumer.earliest_offsets(tp))[tp])
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, base=0.5, cap=30.0)
                log.warning(
                    "%s: first offset unknown (%r); retry %d in %.1fs", tp, exc, attempt, delay
                )
                await asyncio.sleep(delay)

    async def fill_hole(self, event: Any, expected: int, *, may_pass: bool = True) -> bool:
        """Seek back to a skipped offset. True when the hole is accepted as permanent
        (deleted by retention, or no record arrives there while later ones do) and processing
        may pass it; with ``may_pass=False`` it is never given up on."""
        tp = event.message.tp
        earliest = await self._earliest(tp)
        if expected < earliest:
            self.metrics.offset_holes.labels("retention").inc()
            log.error(
                "%s: offsets %d..%d were deleted (retention) before this worker processed them",
                tp,
                expected,
                earliest - 1,
            )
            return True
        rewinds = self.rewinds.setdefault(tp.partition, Rewinds())
        decision = rewinds.decide(expected, time.monotonic())
        if decision == "rewind":
            self.metrics.rewinds.labels(str(tp.partition)).inc()
            log.warning(
                "%s: offset %d was skipped (next delivered: %d); seeking back to it",
                tp,
                expected,
                event.message.offset,
            )
            try:
                await self.app.consumer.seek(tp, expected)
            except Exception as exc:  # revoked meanwhile: its next owner seeks from our record
                log.warning("%s: seek back to %d failed: %r", tp, expected, exc)
        elif decision == "accept" and not may_pass:
            rewinds.attempts = 0  # keep trying: nothing later has arrived to prove a hole
            log.error("%s: offset %d still missing after seeking back; retrying", tp, expected)
        elif decision == "accept":
            self.metrics.offset_holes.labels("unfillable").inc()
            log.error("%s: offset %d never came after seeking back; going past it", tp, expected)
            return True
        return False

    async def in_order(self, events: Sequence[Any]) -> tuple[list[Any], dict[int, tuple[Any, int]]]:
        """The events of a batch that may be processed now, and per partition an event to store
        the partition's record under with its new next offset."""
        now = time.monotonic()
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        accepted: list[Any] = []
        ends: dict[int, tuple[Any, int]] = {}
        for partition, evs in by_partition.items():
            self.last_seen[partition] = now
            offsets = [e.message.offset for e in evs]
            step = plan(offsets, await self.expected(evs[0]))
            if step.hole is not None and await self.fill_hole(evs[0], step.next_offset):
                # Accepted: carry on from the first offset that did arrive after the hole.
                rest = plan(offsets, min(o for o in offsets if o > step.next_offset))
                step = Plan(step.keep + rest.keep, step.replayed, rest.next_offset, rest.hole)
            self.metrics.replayed.inc(step.replayed)
            kept = [evs[i] for i in step.keep]
            accepted.extend(kept)
            if kept:
                ends[partition] = (kept[-1], step.next_offset)
        return accepted, ends

    async def check_idle(self, idle_seconds: float) -> None:
        """Seek back partitions that hold messages past our record but have delivered nothing
        for ``idle_seconds``: their last messages were skipped, and no later message will
        arrive to reveal the hole."""
        if self.busy:
            return
        tps = [tp for tp in self.app.consumer.assignment() if tp.topic == self.topic]
        if not tps:
            return
        highwaters = await self.app.consumer.highwaters(*tps)
        now = time.monotonic()
        for tp in tps:
            end = highwaters.get(tp)
            seen = self.last_seen.setdefault(tp.partition, now)
            if end is None or now - seen < idle_seconds:
                continue
            event = PartitionEvent(_Message(tp.topic, tp.partition, int(end)))
            expected = await self.expected(event)
            if int(end) > expected:
                await self.fill_hole(event, expected, may_pass=False)

    def forget(self) -> None:
        """On revocation: the next owner of a partition starts from its stored record."""
        self.rewinds.clear()
        self.last_seen.clear()
