"""OffsetGuard's decisions against a scripted consumer: which events a batch keeps, when it seeks
back, what it does when retention deleted offsets, and the idle check. The real-Kafka behaviour
is in tests/test_skipped_offsets.py; these cover the branches a broker will not produce on cue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from processor.metrics import Metrics
from processor.offset_guard import OffsetGuard
from processor.offsets import offset_key

pytestmark = pytest.mark.unit

TOPIC = "hits"


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int

    @property
    def tp(self) -> TP:
        return TP(TOPIC, self.partition)


@dataclass(frozen=True)
class Event:
    message: Message


def events(partition: int, *offsets: int) -> list[Event]:
    return [Event(Message(partition, o)) for o in offsets]


@dataclass
class Consumer:
    earliest: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    failures: int = 0  # earliest_offsets raises this many times first (broker unreachable)

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        return {tp: self.earliest.get(tp.partition, 0) for tp in tps}

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        self.seeks += [(tp.partition, o) for tp, o in partitions.items()]

    def assignment(self) -> set[Any]:
        return {TP(TOPIC, p) for p in self.ends}

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.ends[tp.partition] for tp in tps}


@dataclass
class App:
    consumer: Consumer


def guard(consumer: Consumer, table: dict[str, Any]) -> tuple[OffsetGuard, Metrics]:
    metrics = Metrics()
    return OffsetGuard(App(consumer), table, TOPIC, metrics, lambda event: None), metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_keeps_the_run_from_the_record_and_seeks_back_over_a_hole() -> None:
    consumer = Consumer()
    g, metrics = guard(consumer, {offset_key(0): {"next": 4}, offset_key(1): {"next": 0}})
    batch = events(0, 2, 3, 4, 5, 9, 10) + events(1, 0, 1)
    kept, ends = asyncio.run(g.in_order(batch))
    assert [(e.message.partition, e.message.offset) for e in kept] == [
        (0, 4),
        (0, 5),
        (1, 0),
        (1, 1),
    ]
    assert {p: nxt for p, (_, nxt) in ends.items()} == {0: 6, 1: 2}
    assert consumer.seeks == [(0, 6)]  # 6..8 were skipped: fetch them again
    assert sample(metrics, "opens_hits_messages_replayed_total") == 2
    assert sample(metrics, "opens_hits_rewinds_total", partition="0") == 1
    # The same hole again at once (the app stored next=6 after the sink's ack): no second
    # seek until REWIND_SECONDS have passed.
    g.table[offset_key(0)] = {"next": 6}
    asyncio.run(g.in_order(events(0, 9, 10)))
    assert consumer.seeks == [(0, 6)]


def test_nothing_processed_yet_starts_at_the_partitions_first_offset() -> None:
    consumer = Consumer(earliest={0: 3})
    g, _ = guard(consumer, {})
    kept, ends = asyncio.run(g.in_order(events(0, 7, 8)))
    assert kept == [] and ends == {}
    assert consumer.seeks == [(0, 3)]


def test_first_offset_is_asked_again_until_kafka_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr("processor.backoff.asyncio.sleep", no_wait)
    consumer = Consumer(earliest={0: 3}, failures=2)
    g, _ = guard(consumer, {})
    kept, _ = asyncio.run(g.in_order(events(0, 3, 4)))
    assert [e.message.offset for e in kept] == [3, 4]
    assert len(waits) == 2 and 0 < waits[0] <= waits[1] * 2
    assert caplog.text.count("first offset unknown") == 2


def test_offsets_deleted_by_retention_are_passed_loudly_from_the_first_offset_kept() -> None:
    consumer = Consumer(earliest={0: 10})
    g, metrics = guard(consumer, {offset_key(0): {"next": 4}})
    # Kafka holds 10.. now, and 10 and 11 are not in this batch: seek to 10, keep nothing yet.
    kept, _ = asyncio.run(g.in_order(events(0, 12, 13)))
    assert kept == []
    assert consumer.seeks == [(0, 10)]
    assert sample(metrics, "opens_hits_offset_holes_total", reason="retention") == 1
    # From 10 on, everything is kept.
    kept, ends = asyncio.run(g.in_order(events(0, 10, 11, 12)))
    assert [e.message.offset for e in kept] == [10, 11, 12]
    assert ends[0][1] == 13


def test_idle_check_seeks_back_a_quiet_partition_only_when_the_agent_is_idle() -> None:
    consumer = Consumer(ends={0: 9, 1: 5})
    g, _ = guard(consumer, {offset_key(0): {"next": 6}, offset_key(1): {"next": 5}})
    g.last_batch -= 60
    g.busy = True
    asyncio.run(g.check_idle(idle_seconds=5))
    assert consumer.seeks == []  # a batch in flight
    g.busy = False
    asyncio.run(g.check_idle(idle_seconds=5))
    assert consumer.seeks == [(0, 6)]  # partition 1 is caught up
    g.last_batch += 60  # the agent just took a batch: not idle
    consumer.seeks.clear()
    asyncio.run(g.check_idle(idle_seconds=5))
    assert consumer.seeks == []
