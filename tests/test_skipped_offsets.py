"""Committed offsets that pass messages nobody processed — what Faust does around a rebalance
when it skips and acks events (processor.offsets) — lose nothing: the worker seeks back.

The skip itself is a race inside Faust; the test reproduces its effect exactly: hits are put on
the hits topic and the consumer group's offsets are committed past them, as Faust's commit of
skipped events does, and then a worker starts. CI caught the race for real once
(tests/test_worker_scaleout.py lost 104 of 600 requests before the guard existed).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import boto3
import pytest

from processor.core.hit import Hit
from processor.core.native import realtime_decoder
from processor.demo import Request, ensure_stream, record_for
from processor.devstack.chdb_server import ChdbServer
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.settings import load_settings
from processor.wire import hits_by_partition, hits_message
from tests.conftest import unique
from tests.test_faults import (
    expected_summary,
    lazy_client,
    metric_sum,
    put_collecting,
    read_summary,
    wait_for_ids,
)
from tests.test_worker_scaleout import pipeline_env, requests, worker_env

pytestmark = pytest.mark.integration


def decoded(reqs: list[Request]) -> list[Hit]:
    settings = load_settings()
    decoder = realtime_decoder(settings.realtime_fields, settings.decode_context())
    rnd = random.Random(3)
    hits = [decoder.decode(record_for(r, settings.realtime_fields, rnd)) for r in reqs]
    assert all(isinstance(h, Hit) and h.is_hit for h in hits)
    return [h for h in hits if isinstance(h, Hit)]


async def _produce(bootstrap: str, topic: str, hits: list[Hit]) -> None:
    import json

    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        n = len(await producer.partitions_for(topic))
        for partition, group in hits_by_partition(hits, n).items():
            # A message per 10 hits, so a partition holds a run of offsets to skip.
            for i in range(0, len(group), 10):
                value = json.dumps(hits_message(group[i : i + 10])).encode()
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def _commit_to_end(bootstrap: str, group: str, topic: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in ends.items()})
    finally:
        await consumer.stop()


def skip(env: dict[str, str], hits: list[Hit]) -> None:
    """Put ``hits`` on the hits topic and commit the group past them, unprocessed."""
    bootstrap = env["OPENS_KAFKA_BROKERS"]
    asyncio.run(_produce(bootstrap, env["OPENS_TOPIC_HITS"], hits))
    asyncio.run(_commit_to_end(bootstrap, env["OPENS_APP_ID"], env["OPENS_TOPIC_HITS"]))


def test_messages_committed_past_unprocessed_are_sought_back(
    stack: LocalStack,
    chdb_server: ChdbServer,
    worker_proc: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    stream = unique("skipped")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=1)
    shared = pipeline_env(stack, stream)
    shared["OPENS_CLICKHOUSE_URL"] = chdb_server.url("opens")
    client_of = lazy_client(chdb_server.host, chdb_server.port)  # no database until a worker

    def run_worker(name: str) -> WorkerProcess:
        env = worker_env(shared, tmp_path / name)
        url = f"http://127.0.0.1:{env['OPENS_WEB_PORT']}"
        w = WorkerProcess(env, url, tmp_path / f"{name}.log")
        w.start()
        worker_proc.append(w)
        return w

    a, b, c, d = (requests(150, seed=s) for s in (41, 42, 43, 44))

    # 1. A normal start: A through Kinesis; the worker stores its offsets; clean stop.
    put_collecting(kinesis, stream, a)
    w = run_worker("w1")
    wait_for_ids(client_of, {r.request_id for r in a}, w, timeout=180)
    assert w.stop() == 0, w.log_file.read_text()[-3000:]

    # 2. B on the topic, committed past. Nothing arrives after it: only the idle check (a
    #    partition quiet while its high-water mark is past our record) can find it.
    skip(shared, decoded(b))
    w = run_worker("w1")  # same data directory: the offsets come from the local RocksDB
    wait_for_ids(client_of, {r.request_id for r in a + b}, w, timeout=180)
    assert metric_sum(w, "opens_hits_rewinds_total") >= 1
    assert w.stop() == 0, w.log_file.read_text()[-3000:]

    # 3. C committed past, then D: the first message delivered lies beyond the hole. And a new
    #    data directory: the offsets come back from the table's changelog.
    skip(shared, decoded(c))
    w = run_worker("w2")
    put_collecting(kinesis, stream, d)
    wait_for_ids(client_of, {r.request_id for r in a + b + c + d}, w, timeout=180)
    assert metric_sum(w, "opens_hits_rewinds_total") >= 1
    assert read_summary(client_of()) == expected_summary(a + b + c + d)
    assert client_of().command("SELECT count() FROM hits FINAL") == len(a + b + c + d)
    assert metric_sum(w, "opens_hits_offset_holes_total") == 0
    assert w.stop() == 0, w.log_file.read_text()[-3000:]
