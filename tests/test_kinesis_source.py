"""The Kinesis source against moto (real HTTP) and, for faults moto cannot make, a Stubber."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import boto3
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.config import Config
from botocore.stub import Stubber

from processor.demo import ensure_stream
from processor.devstack.kinesis_faults import ThrottlingKinesisProxy
from processor.devstack.stack import LocalStack
from processor.metrics import Metrics
from processor.sources.checkpoints import SHARD_END, MemoryCheckpoints
from processor.sources.kinesis import KinesisSource, SourceRecord, user_records
from tests.conftest import unique


@pytest.mark.unit
def test_kpl_aggregated_records_are_split_and_plain_ones_pass() -> None:
    agg = RecordAggregator()
    for payload in (b"one\n", b"two\n", b"three\n"):
        agg.add_user_record("pk", payload)
    pk, _, data = agg.clear_and_get().get_contents()
    now = dt.datetime.now(dt.UTC)
    records = [
        {
            "SequenceNumber": "10",
            "PartitionKey": "p",
            "Data": b"plain\n",
            "ApproximateArrivalTimestamp": now,
        },
        {
            "SequenceNumber": "11",
            "PartitionKey": pk,
            "Data": data,
            "ApproximateArrivalTimestamp": now,
        },
    ]
    out = list(user_records("shardId-1", records))
    assert [(r.seq, r.sub, r.data) for r in out] == [
        ("10", 0, b"plain\n"),
        ("11", 0, b"one\n"),
        ("11", 1, b"two\n"),
        ("11", 2, b"three\n"),
    ]
    assert all(r.shard == "shardId-1" for r in out)
    assert SourceRecord.from_wire(out[2].to_wire()) == out[2]


@pytest.mark.integration
def test_reads_every_shard_and_checkpoints_after_forward(stack: LocalStack) -> None:
    stream = unique("src")
    client = boto3.client("kinesis")
    ensure_stream(client, stream, shards=3)
    payloads = [f"record-{i}\n".encode() for i in range(60)]
    client.put_records(
        StreamName=stream,
        Records=[{"Data": p, "PartitionKey": f"k{i}"} for i, p in enumerate(payloads)],
    )
    got: list[SourceRecord] = []
    fail_once = {"armed": True}

    async def forward(shard: str, records: list[SourceRecord]) -> None:
        if fail_once["armed"]:
            fail_once["armed"] = False
            # Kafka refused: the checkpoint must not move past these records.
            assert source.checkpoints.get(shard) is None
            raise RuntimeError("broker unavailable")
        got.extend(records)

    store = MemoryCheckpoints()
    source = KinesisSource(client, stream, forward, Metrics(), checkpoints=store, poll_interval=0.2)

    async def go() -> None:
        task = asyncio.create_task(source.run(refresh_seconds=0.5))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if len({r.data for r in got}) == len(payloads):
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert {r.data for r in got} == set(payloads)  # nothing skipped despite the failure
    assert len(store.values) == 3
    for shard, seq in store.values.items():
        assert seq == max((r.seq for r in got if r.shard == shard), key=int)


@pytest.mark.unit
def test_throttling_and_expired_iterator_recover_from_checkpoint() -> None:
    client = boto3.client(
        "kinesis",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",
    )
    stub = Stubber(client)
    shard = "shardId-000000000000"
    rec: dict[str, Any] = {
        "SequenceNumber": "495",
        "Data": b"hello\n",
        "PartitionKey": "k",
        "ApproximateArrivalTimestamp": dt.datetime.now(dt.UTC),
    }
    stub.add_response(
        "get_shard_iterator",
        {"ShardIterator": "it-1" * 8},
        {"StreamName": "s", "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"},
    )
    stub.add_client_error(
        "get_records", "ProvisionedThroughputExceededException", http_status_code=400
    )
    stub.add_response(
        "get_records", {"Records": [rec], "NextShardIterator": "it-2" * 8, "MillisBehindLatest": 0}
    )
    stub.add_client_error("get_records", "ExpiredIteratorException", http_status_code=400)
    stub.add_response(
        "get_shard_iterator",
        {"ShardIterator": "it-3" * 8},
        {
            "StreamName": "s",
            "ShardId": shard,
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": "495",
        },
    )
    # A closed, drained shard: no NextShardIterator ends the reader.
    stub.add_response("get_records", {"Records": [], "MillisBehindLatest": 0})
    forwarded: list[SourceRecord] = []

    async def forward(_: str, records: list[SourceRecord]) -> None:
        forwarded.extend(records)

    metrics = Metrics()
    source = KinesisSource(client, "s", forward, metrics, poll_interval=0.2)
    with stub:
        asyncio.run(asyncio.wait_for(source.read_shard(shard), timeout=30))
        stub.assert_no_pending_responses()
    assert [r.data for r in forwarded] == [b"hello\n"]
    # Drained and closed: the reader marks the shard finished.
    assert source.checkpoints.get(shard) == SHARD_END
    text = metrics.exposition().decode()
    assert 'opens_kinesis_errors_total{code="ProvisionedThroughputExceededException"} 1.0' in text
    assert 'opens_kinesis_errors_total{code="ExpiredIteratorException"} 1.0' in text


def test_throttled_shards_back_off_and_lose_nothing(stack: LocalStack) -> None:
    """Half the GetRecords calls throttled by a real-protocol proxy: every record still arrives,
    once per position, and the throttling shows in the error counter."""
    stream = unique("throttle")
    client = boto3.client("kinesis")
    ensure_stream(client, stream, shards=2)
    payloads = [f"record-{i}\n".encode() for i in range(200)]
    for i in range(0, len(payloads), 50):
        client.put_records(
            StreamName=stream,
            Records=[
                {"Data": p, "PartitionKey": f"k{i + j}"} for j, p in enumerate(payloads[i : i + 50])
            ],
        )
    proxy = ThrottlingKinesisProxy(stack.moto.endpoint, throttle=0.5, seed=3).start()
    try:
        # botocore would retry a throttled call itself first; with that off, every throttled
        # answer reaches the source's own back-off, and each must show in the counter.
        throttled_client = boto3.client(
            "kinesis",
            endpoint_url=proxy.endpoint,
            config=Config(retries={"total_max_attempts": 1}),
        )
        got: list[SourceRecord] = []

        async def forward(shard: str, records: list[SourceRecord]) -> None:
            got.extend(records)

        metrics = Metrics()
        source = KinesisSource(throttled_client, stream, forward, metrics, poll_interval=0.05)
        source.batch_limit = 20  # many small reads: many chances to be throttled

        async def go() -> None:
            task = asyncio.create_task(source.run(refresh_seconds=0.5))
            for _ in range(300):
                await asyncio.sleep(0.1)
                if len(got) >= len(payloads) and proxy.throttled >= 3:
                    break
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(go())
    finally:
        proxy.stop()
    assert sorted(r.data for r in got) == sorted(payloads)
    assert len({(r.shard, r.seq) for r in got}) == len(got)  # nothing read twice
    assert proxy.throttled >= 3
    exposition = metrics.exposition().decode()
    series = 'opens_kinesis_errors_total{code="ProvisionedThroughputExceededException"}'
    assert f"{series} {float(proxy.throttled)}" in exposition
