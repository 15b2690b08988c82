"""Kinesis (moto) → worker's Kinesis source → Kafka → Faust agent → ClickHouse (chDB)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import clickhouse_connect
import pytest

from processor.demo import ensure_stream, generate, record_for
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.settings import load_settings
from processor.topics import existing_partitions
from tests.conftest import free_port, query_chdb_in_subprocess, unique

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    n = existing_partitions(bootstrap, topic)
    assert n, f"topic {topic} does not exist"

    async def run() -> list[dict[str, Any]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(n)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            out: list[dict[str, Any]] = []
            while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                out += [json.loads(m.value) for msgs in batch.values() for m in msgs]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_record_lands_in_clickhouse_once(stack: LocalStack, tmp_path: Path) -> None:
    stream = unique("skeleton")
    env = {
        **os.environ,
        **stack.env(),
        "OPENS_DATA_DIR": str(tmp_path),
        "OPENS_KINESIS_STREAM": stream,
        "OPENS_WEB_PORT": str(free_port()),
        "OPENS_APP_ID": unique("app"),
        "OPENS_TOPIC_HITS": unique("hits"),
        "OPENS_TOPIC_FIRST_OPENS": unique("first"),
        "OPENS_SINK_FLUSH_SECONDS": "0.2",
        "OPENS_PIXEL_SECRETS": "skeleton-secret",
        "OPENS_QUERY_PORT": str(free_port()),
    }
    settings = load_settings(
        data_dir=tmp_path, web_port=int(env["OPENS_WEB_PORT"]), kinesis_stream=stream
    )
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=2)

    rnd = random.Random(3)
    requests = generate(30, seed=5)
    records = [record_for(r, settings.realtime_fields, rnd) for r in requests]
    records += records[:5]  # redelivered records: the same requests again
    records.append(b"not a cloudfront record\n")
    # A forged pixel: a signature that no configured secret made. Kept, never an open.
    forged = generate(1, seed=11)[0]
    records.append(
        record_for(forged, settings.realtime_fields, rnd).replace(
            b"cat=news", b"cat=news&sig=AAAAAAAAAAAAAAAAAAAAAA"
        )
    )
    favicon = generate(1, seed=9)[0]
    records.append(
        record_for(
            favicon.__class__(**{**favicon.__dict__, "path": "/favicon.ico"}),
            settings.realtime_fields,
            rnd,
        )
    )
    kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(records)],
    )

    # A stray message already waits on the hits topic (which the broker auto-creates with one
    # partition, fewer than the setting): it must become a dead letter, not stop the worker.
    async def stray() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(env["OPENS_TOPIC_HITS"], b'{"not": "a hits batch"}')
        finally:
            await producer.stop()

    asyncio.run(stray())
    worker = WorkerProcess(env, settings.web_url, tmp_path / "worker.log")
    worker.start()
    try:
        worker.wait_for('opens_records_total{outcome="hit",source="realtime"}', 36, timeout=120)
        worker.wait_for("opens_duplicates_dropped_total", 5, timeout=60)
        worker.wait_for("opens_sink_rows_total", 31, timeout=60)
        m = worker.metrics()
        assert m["opens_sink_rows_total"] == 31  # the 5 redeliveries never reached ClickHouse
        assert m['opens_hit_signatures_total{signature="invalid",source="realtime"}'] == 1
        assert m['opens_hit_signatures_total{signature="missing",source="realtime"}'] == 35
        assert {k for k in m if k.startswith("opens_kinesis_checkpoint_age_seconds")} == {
            f'opens_kinesis_checkpoint_age_seconds{{shard="shardId-00000000000{i}"}}'
            for i in (0, 1)
        }
        assert m["opens_duplicates_dropped_total"] == 5
        assert m['opens_records_total{outcome="bad:field_count",source="realtime"}'] == 1
        assert m['opens_records_total{outcome="not_pixel",source="realtime"}'] == 1
        assert m['opens_records_total{outcome="bad:hits_message",source="kafka"}'] == 1
        assert sum(v for k, v in m.items() if k.startswith("opens_kinesis_records_total")) == 38

        # While the worker owns the embedded ClickHouse, analysts still read live numbers:
        # `opens report` finds the worker's endpoint, and so does a plain clickhouse-connect.
        expected = {}
        for r in requests:
            expected.setdefault(r.cid, set()).add(r.sid)
        out = subprocess.run(
            [sys.executable, "-m", "processor", "report", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        report = {row["campaign"]: row for row in json.loads(out.stdout)}
        assert {c: row["unique_opens"] for c, row in report.items()} == {
            c: len(s) for c, s in expected.items()
        }
        assert {c: row["invalid_hits"] for c, row in report.items() if row["invalid_hits"]} == {
            forged.cid: 1
        }
        assert {c: row["opens"] for c, row in report.items()} == {
            c: sum(1 for r in requests if r.cid == c) for c in expected
        }
        remote = clickhouse_connect.get_client(
            host="127.0.0.1", port=int(env["OPENS_QUERY_PORT"]), database="opens"
        )
        live = dict(remote.query("SELECT campaign, unique_opens FROM campaign_summary").result_rows)
        assert live == {c: row["unique_opens"] for c, row in report.items()}
        with pytest.raises(Exception, match="read-only"):
            remote.command("DROP TABLE hits")
    finally:
        assert worker.stop() == 0, (tmp_path / "worker.log").read_text()[-3000:]

    # The first-opens topic: keeping the earliest event per (campaign, subscriber) gives the truth.
    earliest: dict[tuple[str, str], int] = {}
    for r in requests:
        key = (r.cid, r.sid)
        earliest[key] = min(earliest.get(key, round(r.ts * 1000)), round(r.ts * 1000))
    got_first: dict[tuple[str, str], int] = {}
    for message in consume_all(stack.kafka.bootstrap, env["OPENS_TOPIC_FIRST_OPENS"]):
        assert message["v"] == 1
        for value in message["first_opens"]:
            key = (value["cid"], value["sid"])
            got_first[key] = min(got_first.get(key, value["ts_ms"]), value["ts_ms"])
    assert got_first == earliest

    rows = query_chdb_in_subprocess(
        tmp_path / "clickhouse",
        "SELECT request_id, cid, sid, toUnixTimestamp64Milli(ts) FROM opens.hits FINAL",
    )
    got = {(r[0], r[1], r[2], int(r[3])) for r in rows}
    truth = {(r.request_id, r.cid, r.sid, round(r.ts * 1000)) for r in [*requests, forged]}
    assert len(rows) == len(truth)
    assert got == truth
