"""Backfill from moto S3 (both access-log key layouts, pagination) and the default Kafka mode."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import boto3
import pytest

from processor.backfill.encode import KafkaMessages
from processor.backfill.sinks import KafkaDelivery
from processor.core.hit import Hit
from processor.devstack.stack import LocalStack
from processor.wire import hit_partition, hits_from_message
from tests.backfill.conftest import RunFn, manifest
from tests.backfill.logs import cloudfront_files, make_requests, s3_access_files, truth_hits
from tests.conftest import unique
from tests.factories import check, summary, write

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _upload(s3: Any, bucket: str, files: dict[str, tuple[bytes, Any]]) -> None:
    for key, (data, _) in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_s3_prefix_with_pagination_both_layouts_and_rerun(
    stack: LocalStack, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    s3 = boto3.client("s3")
    bucket = unique("logs")
    s3.create_bucket(Bucket=bucket)
    rnd = random.Random(11)
    cf = make_requests(rnd, 1500)
    simple = make_requests(rnd, 500, fmt="s3")
    parted = make_requests(rnd, 500, fmt="s3")
    files = {
        **cloudfront_files(cf, prefix="logs/cf/").files,
        **s3_access_files(simple, partitioned=False, prefix="logs/s3/").files,
        **s3_access_files(parted, partitioned=True, prefix="logs/s3p/").files,
    }
    _upload(s3, bucket, files)
    s3.put_object(Bucket=bucket, Key="other/unrelated.txt", Body=b"not under the prefix")
    # Page size 5: the listing takes several pages.
    result = run_direct(f"s3://{bucket}/logs/", s3_client=s3, page_size=5)
    assert result.clean
    assert result.objects == len(files) > 10
    check(chdb_client, backfill_db, truth_hits(cf + simple + parted))
    rows = manifest(chdb_client, backfill_db)
    assert set(rows) == {f"s3://{bucket}/{k}" for k in files}
    before = summary(chdb_client, backfill_db)

    # A re-run skips everything; an object replaced in S3 (new ETag) is read again.
    key = next(k for k in files if k.startswith("logs/cf/"))
    s3.put_object(Bucket=bucket, Key=key, Body=files[key][0] + b"\n")
    again = run_direct(f"s3://{bucket}/logs/", s3_client=s3, page_size=5)
    assert (again.objects, again.skipped_done) == (1, len(files) - 1)
    assert summary(chdb_client, backfill_db) == before


def _create_topic(brokers: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def _consume(brokers: str, topic: str) -> list[tuple[int, dict[str, Any]]]:
    from aiokafka import AIOKafkaConsumer

    async def go() -> list[tuple[int, dict[str, Any]]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=brokers, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        out = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=3000)
                if not batch:
                    return out
                for tp, messages in batch.items():
                    out.extend((tp.partition, json.loads(m.value)) for m in messages)
        finally:
            await consumer.stop()

    return asyncio.run(go())


def test_kafka_mode_publishes_what_the_worker_stores(
    stack: LocalStack, run_direct: RunFn, chdb_client: Any, backfill_db: str, tmp_path: Any
) -> None:
    brokers = stack.env()["OPENS_KAFKA_BROKERS"]
    topic = unique("hits")
    _create_topic(brokers, topic)
    reqs = make_requests(random.Random(12), 2000)
    cloudfront_files(reqs).write_to(tmp_path)

    def delivery() -> KafkaDelivery:
        return KafkaDelivery(brokers, topic, PARTITIONS)

    encode = KafkaMessages(PARTITIONS)
    first = run_direct(str(tmp_path), delivery=delivery, encode=encode, mode="kafka")
    assert first.clean and first.hits == len(truth_hits(reqs))
    messages = _consume(brokers, topic)
    hits: list[Hit] = []
    for partition, value in messages:
        batch = hits_from_message(value)  # the worker's own reader of the wire format
        assert all(hit_partition(h, PARTITIONS) == partition for h in batch)
        hits.extend(batch)
    assert sorted(h.request_id for h in hits) == sorted(h.request_id for h in truth_hits(reqs))
    assert {h.source for h in hits} == {"standard"}
    # What the worker's store agent does with them: insert into ClickHouse.
    write(chdb_client, backfill_db, hits)
    check(chdb_client, backfill_db, truth_hits(reqs))
    # Recorded as finished: a re-run publishes nothing.
    again = run_direct(str(tmp_path), delivery=delivery, encode=encode, mode="kafka")
    assert again.objects == 0
    assert len(_consume(brokers, topic)) == len(messages)
    modes = chdb_client.query(f"SELECT DISTINCT mode FROM {backfill_db}.backfill_manifest")
    assert modes.result_rows == [("kafka",)]


def test_cli_default_mode_publishes_to_the_hits_topic(stack: LocalStack, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    brokers = stack.env()["OPENS_KAFKA_BROKERS"]
    topic = unique("hits")
    _create_topic(brokers, topic)
    reqs = make_requests(random.Random(13), 800)
    cloudfront_files(reqs).write_to(tmp_path / "logs")
    env = {
        **os.environ,
        "OPENS_DATA_DIR": str(tmp_path / "data"),
        "OPENS_KAFKA_BROKERS": brokers,
        "OPENS_TOPIC_HITS": topic,
        "OPENS_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    argv = [sys.executable, "-m", "processor", "backfill", str(tmp_path / "logs")]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    messages = _consume(brokers, topic)
    published = [h for _, value in messages for h in hits_from_message(value)]
    assert sorted(h.request_id for h in published) == sorted(h.request_id for h in truth_hits(reqs))
    # The manifest (kept beside the data dir while a worker owns the embedded ClickHouse)
    # makes the second run publish nothing.
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert '"objects_already_done": 8' in again.stderr
    assert len(_consume(brokers, topic)) == len(messages)
