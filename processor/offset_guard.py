"""The store agent's offset guard: the Kafka side of processor.offsets.

Holds, per hits partition, the next offset the worker has not processed (a record in the
subscriber table, so it lives in that partition's RocksDB database and changelog and moves to
whichever worker owns the partition), decides per batch which events may be processed, seeks
back over skipped offsets, and — because a hole at the *end* of a partition is only noticed when
a later message arrives — checks idle partitions against their high-water mark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from processor.backoff import retry
from processor.metrics import Metrics
from processor.offsets import LOUD_AFTER, Plan, Rewinds, offset_key, plan

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
        self.last_batch = time.monotonic()  # when the agent last took a batch
        self.busy = False  # a batch is between delivery and its stored offsets

    async def expected(self, event: Any) -> int:
        """The next offset of the event's partition not yet processed: our record, or the
        partition's first offset when nothing was ever processed there."""
        self.make_current(event)
        record = self.table.get(offset_key(event.message.partition))
        if record is not None:
            return int(record["next"])
        return await self._earliest(event.message.tp)

    async def _earliest(self, tp: Any) -> int:
        """The partition's first offset, asked until Kafka answers: the batch waits meanwhile
        (backpressure) rather than crash the agent."""

        async def ask() -> int:
            return int((await self.app.consumer.earliest_offsets(tp))[tp])

        def failed(exc: Exception, attempt: int, delay: float) -> None:
            log.warning("%s: first offset unknown (%r); retry %d in %.1fs", tp, exc, attempt, delay)

        return await retry(ask, failed)

    async def fill_hole(self, tp: Any, expected: int, seen: int) -> int | None:
        """Act on a hole at ``expected``. Returns the offset to expect instead when Kafka no
        longer holds ``expected`` (deleted by retention: those hits are lost, loudly), else
        seeks back to it (spaced, see Rewinds) and returns None. ``seen``: the offset that
        arrived instead (for the log)."""
        earliest = await self._earliest(tp)
        if expected < earliest:
            self.metrics.offset_holes.labels("retention").inc()
            log.error(
                "%s: offsets %d..%d were deleted (retention) before this worker processed them;"
                " backfill their period from the standard logs",
                tp,
                expected,
                earliest - 1,
            )
            return earliest
        rewinds = self.rewinds.setdefault(tp.partition, Rewinds())
        if rewinds.due(expected, time.monotonic()):
            self.metrics.rewinds.labels(str(tp.partition)).inc()
            report = log.error if rewinds.attempts > LOUD_AFTER else log.warning
            report(
                "%s: offset %d was skipped (next delivered: %d); seeking back to it (attempt %d)",
                tp,
                expected,
                seen,
                rewinds.attempts,
            )
            try:
                # Through the consumer's own thread, which also resets Faust's read position.
                await self.app.consumer.seek_wait({tp: expected})
            except Exception as exc:  # revoked meanwhile: its next owner seeks from our record
                log.warning("%s: seek back to %d failed: %r", tp, expected, exc)
        return None

    async def in_order(self, events: Sequence[Any]) -> tuple[list[Any], dict[int, tuple[Any, int]]]:
        """The events of a batch that may be processed now, and per partition an event to store
        the partition's record under with its new next offset."""
        self.last_batch = time.monotonic()
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            by_partition.setdefault(event.message.partition, []).append(event)
        accepted: list[Any] = []
        ends: dict[int, tuple[Any, int]] = {}
        for partition, evs in by_partition.items():
            offsets = [e.message.offset for e in evs]
            step = plan(offsets, await self.expected(evs[0]))
            if step.hole is not None:
                tp = evs[0].message.tp
                seen = min(o for o in offsets if o > step.hole)
                instead = await self.fill_hole(tp, step.hole, seen)
                if instead is not None:  # retention: carry on from the partition's first offset
                    rest = plan(offsets, instead)
                    step = Plan(step.keep + rest.keep, step.replayed, rest.next_offset, rest.hole)
                    if rest.hole is not None:
                        await self.fill_hole(tp, rest.hole, seen)
            self.metrics.replayed.inc(step.replayed)
            kept = [evs[i] for i in step.keep]
            accepted.extend(kept)
            if kept:
                ends[partition] = (kept[-1], step.next_offset)
        return accepted, ends

    def idle(self, seconds: float) -> bool:
        return not self.busy and time.monotonic() - self.last_batch >= seconds

    async def check_idle(self, idle_seconds: float) -> None:
        """Seek back partitions holding messages past our record while the agent has taken no
        batch at all for ``idle_seconds``: their last messages were skipped, and no later
        message will arrive to reveal the hole. (Idle means the whole agent, not one partition:
        a partition's events can wait in the stream's queue behind other partitions' backlog.)"""
        if not self.idle(idle_seconds):
            return
        tps = [tp for tp in self.app.consumer.assignment() if tp.topic == self.topic]
        if not tps:
            return
        highwaters = await self.app.consumer.highwaters(*tps)
        for tp in tps:
            end = highwaters.get(tp)  # the next offset to be written
            if end is None:
                continue
            event = PartitionEvent(_Message(tp.topic, tp.partition, int(end)))
            expected = await self.expected(event)
            if int(end) > expected and self.idle(idle_seconds):  # still idle after the awaits
                instead = await self.fill_hole(tp, expected, int(end))
                if instead is not None and int(end) > instead:
                    await self.fill_hole(tp, instead, int(end))

    def forget(self) -> None:
        """On revocation: the next owner of a partition starts from its stored record."""
        self.rewinds.clear()
