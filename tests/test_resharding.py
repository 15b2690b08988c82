"""The Kinesis source across a split and a merge, against kinesis-local (kinesis-mock).

moto cannot test this: it keeps writing to a split parent and never ends a closed shard.
kinesis-mock closes the parent, routes new writes to the children and returns
``NextShardIterator=None`` once the parent is drained, as the service does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from processor.devstack.kinesis_local import KinesisLocal
from processor.metrics import Metrics
from processor.sources.checkpoints import SHARD_END, MemoryCheckpoints
from processor.sources.kinesis import KinesisSource, SourceRecord
from tests.conftest import REPO, unique

pytestmark = pytest.mark.integration

KEYS = [f"key-{i}" for i in range(12)]
Event = tuple[str, str]  # ("get", shard) | ("end", shard) | ("rec", shard)


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KinesisLocal]:
    """One emulator for the module; a failure to start fails the tests (no skip)."""
    emulator = KinesisLocal.on_free_ports(tmp_path_factory.mktemp("kinesis-local"), REPO / ".cache")
    try:
        emulator.start(timeout=60)
    except Exception:
        emulator.stop()
        raise
    yield emulator
    emulator.stop()


class RecordingClient:
    """Passes calls to boto3, noting when a reader opens a shard (GetShardIterator)."""

    def __init__(self, client: Any, events: list[Event]) -> None:
        self._client = client
        self._events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self._events.append(("get", kwargs["ShardId"]))
        return self._client.get_shard_iterator(**kwargs)


class RecordingCheckpoints(MemoryCheckpoints):
    """Memory checkpoints that note when a shard reaches SHARD_END, in the shared event log."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self._events = events

    async def put(self, shard: str, seq: str) -> None:
        await super().put(shard, seq)
        if seq == SHARD_END:
            self._events.append(("end", shard))


@dataclass
class Run:
    """What the sources forwarded, in arrival order, and the reader/checkpoint events."""

    events: list[Event] = field(default_factory=list)
    forwarded: list[tuple[str, str, bytes]] = field(default_factory=list)
    by_source: dict[str, set[str]] = field(default_factory=dict)

    def index(self, kind: str, shard: str) -> int:
        return self.events.index((kind, shard))

    def payloads(self) -> list[bytes]:
        return [data for _, _, data in self.forwarded]

    def shard_of(self) -> dict[bytes, str]:
        return {data: shard for shard, _, data in self.forwarded}


def wait_active(client: Any, stream: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"stream {stream} did not become ACTIVE")


def create_stream(client: Any, shards: int) -> str:
    stream = unique("reshard")
    client.create_stream(StreamName=stream, ShardCount=shards)
    wait_active(client, stream)
    return stream


def put(client: Any, stream: str, phase: str, count: int, sent: dict[str, list[bytes]]) -> None:
    """``count`` records round-robin over KEYS, one PutRecord each so the order is the put order."""
    for i in range(count):
        key = KEYS[i % len(KEYS)]
        data = f"{phase}-{i}-{key}".encode()
        client.put_record(StreamName=stream, PartitionKey=key, Data=data)
        sent.setdefault(key, []).append(data)


def shards(client: Any, stream: str) -> list[dict[str, Any]]:
    return list(client.list_shards(StreamName=stream)["Shards"])


def split(client: Any, stream: str, shard: dict[str, Any]) -> None:
    lo = int(shard["HashKeyRange"]["StartingHashKey"])
    hi = int(shard["HashKeyRange"]["EndingHashKey"])
    client.split_shard(
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((lo + hi) // 2)
    )
    wait_active(client, stream)


async def consume(
    client: Any,
    stream: str,
    run: Run,
    total: int,
    *,
    owners: dict[str, Callable[[str], bool]] | None = None,
    slow_shard: str | None = None,
    during: Callable[[], None] | None = None,
    start: str = "TRIM_HORIZON",
    within: float = 20.0,
) -> None:
    """Run one source per owner (sharing one checkpoint store, as the Kafka topic is shared)
    until ``total`` records were forwarded, then a little longer to catch duplicates.
    ``during`` (blocking) runs in a thread once the sources have started; ``slow_shard``'s
    batches are held until ``during`` returned, then forwarded slowly."""
    owners = owners or {"only": lambda _: True}
    checkpoints = RecordingCheckpoints(run.events)
    recording = RecordingClient(client, run.events)
    during_done = asyncio.Event()
    if during is None:
        during_done.set()

    def forwarder(name: str) -> Callable[[str, list[SourceRecord]], Any]:
        async def forward(shard: str, records: list[SourceRecord]) -> None:
            if shard == slow_shard:
                await during_done.wait()
                await asyncio.sleep(1.0)  # a slow parent: nothing else may start its children
            run.by_source.setdefault(name, set()).add(shard)
            run.forwarded.extend((r.shard, r.seq, r.data) for r in records)
            run.events.extend(("rec", r.shard) for r in records)

        return forward

    sources = [
        KinesisSource(
            recording,
            stream,
            forwarder(name),
            Metrics(),
            checkpoints=checkpoints,
            owns=owns,
            start=start,
            poll_interval=0.2,
        )
        for name, owns in owners.items()
    ]
    tasks = [asyncio.create_task(s.run(refresh_seconds=0.5)) for s in sources]
    try:
        if during is not None:
            await asyncio.to_thread(during)
            during_done.set()
        deadline = time.monotonic() + within
        while len(run.forwarded) < total and time.monotonic() < deadline:
            for task in tasks:
                if task.done():
                    task.result()  # a crashed run loop fails the test with its own error
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)  # room for a duplicate to show up
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert len(run.forwarded) >= total, f"only {len(run.forwarded)} of {total} records forwarded"


def assert_exactly_once_in_key_order(run: Run, sent: dict[str, list[bytes]]) -> None:
    payloads = run.payloads()
    expected = sorted(p for ps in sent.values() for p in ps)
    assert sorted(payloads) == expected, "every record forwarded exactly once"
    for key, ordered in sent.items():
        got = [p for p in payloads if p.endswith(f"-{key}".encode())]
        assert got == ordered, f"records of {key} out of put order"


def assert_parent_first(run: Run, parent: str, children: list[str]) -> None:
    """Every record of ``parent`` was forwarded before any record of ``children``, and no child
    reader opened its shard before the parent reached SHARD_END."""
    shard_idx = [shard for shard, _, _ in run.forwarded]
    last_parent = max(i for i, s in enumerate(shard_idx) if s == parent)
    child_idx = [i for i, s in enumerate(shard_idx) if s in children]
    assert child_idx, "the children received records"
    assert last_parent < min(child_idx)
    end = run.index("end", parent)
    for child in children:
        assert run.index("get", child) > end, f"{child} opened before {parent} ended"


def test_split_mid_stream_reads_parent_to_end_before_children(kinesis: KinesisLocal) -> None:
    client = kinesis.client()
    stream = create_stream(client, 1)
    (parent,) = shards(client, stream)
    sent: dict[str, list[bytes]] = {}
    put(client, stream, "before", 36, sent)
    split(client, stream, parent)
    put(client, stream, "after", 36, sent)
    children = [s["ShardId"] for s in shards(client, stream) if s.get("ParentShardId")]
    assert len(children) == 2

    run = Run()
    asyncio.run(consume(client, stream, run, 72))

    assert_exactly_once_in_key_order(run, sent)
    assert_parent_first(run, parent["ShardId"], children)
    on = run.shard_of()
    assert {on[p] for p in on if p.startswith(b"before-")} == {parent["ShardId"]}
    assert {on[p] for p in on if p.startswith(b"after-")} == set(children)


def test_split_while_the_source_is_reading(kinesis: KinesisLocal) -> None:
    """The parent is closed under a running reader: it must see SHARD_END and wake the loop."""
    client = kinesis.client()
    stream = create_stream(client, 1)
    (parent,) = shards(client, stream)
    sent: dict[str, list[bytes]] = {}
    put(client, stream, "before", 24, sent)

    def reshard_mid_stream() -> None:
        time.sleep(0.5)  # the parent reader is polling by now
        put(client, stream, "during", 24, sent)
        split(client, stream, parent)
        put(client, stream, "after", 24, sent)

    run = Run()
    asyncio.run(
        consume(client, stream, run, 72, during=reshard_mid_stream, slow_shard=parent["ShardId"])
    )

    children = [s["ShardId"] for s in shards(client, stream) if s.get("ParentShardId")]
    assert_exactly_once_in_key_order(run, sent)
    assert_parent_first(run, parent["ShardId"], children)
    assert ("get", parent["ShardId"]) in run.events


def test_merge_starts_the_child_only_after_both_parents_end(kinesis: KinesisLocal) -> None:
    client = kinesis.client()
    stream = create_stream(client, 2)
    first, second = sorted(shards(client, stream), key=lambda s: s["ShardId"])
    sent: dict[str, list[bytes]] = {}
    put(client, stream, "before", 36, sent)
    client.merge_shards(
        StreamName=stream,
        ShardToMerge=first["ShardId"],
        AdjacentShardToMerge=second["ShardId"],
    )
    wait_active(client, stream)
    put(client, stream, "after", 36, sent)
    (child,) = [s for s in shards(client, stream) if s.get("AdjacentParentShardId")]
    parents = {child["ParentShardId"], child["AdjacentParentShardId"]}
    assert parents == {first["ShardId"], second["ShardId"]}

    run = Run()
    # The second parent forwards slowly, so the first ends well before it: a child started on
    # one finished parent would show up as an early "get".
    asyncio.run(consume(client, stream, run, 72, slow_shard=second["ShardId"]))

    assert_exactly_once_in_key_order(run, sent)
    for parent in parents:
        assert_parent_first(run, parent, [child["ShardId"]])
    assert run.index("end", first["ShardId"]) < run.index("end", second["ShardId"])
    on = run.shard_of()
    assert {on[p] for p in on if p.startswith(b"before-")} == parents
    assert {on[p] for p in on if p.startswith(b"after-")} == {child["ShardId"]}


def shard_number(shard: str) -> int:
    return int(shard.rsplit("-", 1)[1])


def test_two_owners_read_disjoint_shards_that_cover_every_record(kinesis: KinesisLocal) -> None:
    """Even shards to one worker, odd to the other; after a split a child can belong to the
    worker that does not own its parent, and must wait for the parent's SHARD_END from the
    other worker (through the shared checkpoint store)."""
    client = kinesis.client()
    stream = create_stream(client, 2)
    first, _ = sorted(shards(client, stream), key=lambda s: s["ShardId"])
    sent: dict[str, list[bytes]] = {}
    put(client, stream, "before", 36, sent)
    split(client, stream, first)
    put(client, stream, "after", 36, sent)
    all_shards = {s["ShardId"] for s in shards(client, stream)}
    children = [s["ShardId"] for s in shards(client, stream) if s.get("ParentShardId")]
    assert len(all_shards) == 4

    def even(shard: str) -> bool:
        return shard_number(shard) % 2 == 0

    def odd(shard: str) -> bool:
        return not even(shard)

    run = Run()
    asyncio.run(consume(client, stream, run, 72, owners={"even": even, "odd": odd}))

    assert_exactly_once_in_key_order(run, sent)
    assert_parent_first(run, first["ShardId"], children)
    read_even, read_odd = run.by_source["even"], run.by_source["odd"]
    assert not read_even & read_odd
    assert all(map(even, read_even))
    assert all(map(odd, read_odd))
    assert read_even | read_odd == all_shards
    assert {even(c) for c in children} == {True, False}  # one child crosses to the other owner


def test_latest_start_reads_children_of_a_finished_parent_from_their_first_record(
    kinesis: KinesisLocal,
) -> None:
    """LATEST means "from when the reader opened the shard" for the shards open at start-up;
    a child of a parent read to SHARD_END must still be read from its first record, or the
    records written to it while the parent was being drained are lost."""
    client = kinesis.client()
    stream = create_stream(client, 1)
    (parent,) = shards(client, stream)
    ignored: dict[str, list[bytes]] = {}
    put(client, stream, "old", 12, ignored)  # before the source starts: LATEST skips these
    sent: dict[str, list[bytes]] = {}
    run = Run()

    def reshard_mid_stream() -> None:
        deadline = time.monotonic() + 10
        while ("get", parent["ShardId"]) not in run.events and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the LATEST iterator is in hand
        put(client, stream, "during", 24, sent)
        split(client, stream, parent)
        put(client, stream, "after", 24, sent)  # the parent is held until these are in

    asyncio.run(
        consume(
            client,
            stream,
            run,
            48,
            during=reshard_mid_stream,
            slow_shard=parent["ShardId"],
            start="LATEST",
            within=10,
        )
    )

    children = [s["ShardId"] for s in shards(client, stream) if s.get("ParentShardId")]
    assert_exactly_once_in_key_order(run, sent)
    assert_parent_first(run, parent["ShardId"], children)
