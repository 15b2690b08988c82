"""`opens forget` sticks on the real stack: Kafka, moto's Kinesis, the worker, a ClickHouse
server (chDB behind its HTTP protocol, so `opens forget` runs while the worker writes).

After the subscriber is forgotten, a re-run `opens backfill --force` through Kafka and the
worker, a full Kafka replay (a new consumer group reading the hits topic from the start) and a
`--direct --force` backfill all leave every view equal to the truth without them; the worker's
table state of the subscriber ends in a changelog tombstone. A real-time record that fails to
decode reaches the dead-letter topic with its client IP truncated.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import clickhouse_connect
import pytest

from processor.core.fields import DEFAULT_REALTIME_FIELDS, canonical_order
from processor.demo import ensure_stream
from processor.devstack.chdb_server import ChdbServer
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from tests.backfill.logs import (
    SECRET,
    cloudfront_files,
    make_requests,
    realtime_truth_hits,
    truth_hits,
    with_ms,
)
from tests.backfill.test_worker_e2e import _settled_summary, _summary
from tests.conftest import unique
from tests.core.render import Req, realtime_record
from tests.factories import check, truth
from tests.test_worker_scaleout import pipeline_env, worker_env

pytestmark = pytest.mark.integration

SUPPRESSED = 'opens_suppressed_hits_total{path="worker"}'
FIELDS = canonical_order(DEFAULT_REALTIME_FIELDS)


def _opens(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,  # no terminal: forget asks nothing (DESIGN §4)
    )


def _bad_records() -> list[bytes]:
    """Two records that cannot be decoded, from a client at 198.51.100.77."""
    req = Req("bad-ts", 1_764_000_000_000, "sid-x", "alpha", "", ip="198.51.100.77")
    good = realtime_record(req, DEFAULT_REALTIME_FIELDS, newline=False).decode().split("\t")
    bad_ts = list(good)
    bad_ts[FIELDS.index("timestamp")] = "not-a-time"
    return ["\t".join(bad_ts).encode(), "\t".join([*good, "extra"]).encode()]


def _consume(brokers: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of ``topic`` from the start, in order."""
    from aiokafka import AIOKafkaConsumer

    async def go() -> list[tuple[bytes | None, bytes | None]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=brokers, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        try:
            out = []
            while True:
                batch = await consumer.getmany(timeout_ms=3000)
                if not batch:
                    return out
                for records in batch.values():
                    out += [(r.key, r.value) for r in records]
        finally:
            await consumer.stop()

    return asyncio.run(go())


def _tombstoned(env: dict[str, str], sid: str, timeout: float) -> bool:
    """The last changelog record of ``sid``'s worker state is a tombstone (within ``timeout``)."""
    topic = f"{env['OPENS_APP_ID']}-subscribers-changelog"
    deadline = time.monotonic() + timeout
    while True:
        records = _consume(env["OPENS_KAFKA_BROKERS"], topic)
        mine = [v for k, v in records if k is not None and json.loads(k) == f"s:{sid}"]
        if mine and mine[-1] is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def _rows_of(remote: Any, sid: str) -> tuple[int, int]:
    p = {"sid": sid}
    return (
        int(remote.command("SELECT count() FROM hits WHERE sid = {sid:String}", parameters=p)),
        int(
            remote.command("SELECT count() FROM first_opens WHERE sid = {sid:String}", parameters=p)
        ),
    )


def test_forget_sticks_through_backfill_replay_and_direct(
    stack: LocalStack, chdb_server: ChdbServer, tmp_path: Path
) -> None:
    rnd = random.Random(1414)
    reqs = make_requests(rnd, 900)
    seen = with_ms([r for r in reqs if rnd.random() < 0.5], rnd)
    stream = unique("forget")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=1)
    data = [realtime_record(r.req, DEFAULT_REALTIME_FIELDS) for r in seen] + _bad_records()
    for i in range(0, len(data), 250):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": d, "PartitionKey": f"pk-{i + j}"} for j, d in enumerate(data[i:][:250])
            ],
        )
    shared = {
        **pipeline_env(stack, stream),
        "OPENS_CLICKHOUSE_URL": chdb_server.url(),
        "OPENS_PIXEL_SECRETS": SECRET.decode(),
        "OPENS_SUPPRESSION_REFRESH_SECONDS": "1",
    }
    env = worker_env(shared, tmp_path / "worker")
    logs = tmp_path / "logs"
    cloudfront_files(reqs).write_to(logs)

    all_hits = truth_hits(reqs) + realtime_truth_hits(seen)
    count: dict[str, int] = {}
    for h in truth_hits(reqs):
        count[h.sid or ""] = count.get(h.sid or "", 0) + 1
    victim = max(sorted(count), key=count.__getitem__)
    n_victim = count[victim]
    rest = [h for h in all_hits if h.sid != victim]
    expected_rest = truth(rest)

    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "a.log")
    worker.start()
    try:
        worker.wait_for("opens_sink_rows_total", len(truth_hits(seen)), timeout=300)
        remote = clickhouse_connect.get_client(  # the worker has made the schema by now
            host=chdb_server.host, port=chdb_server.port, database="opens"
        )
        done = _opens(env, "backfill", str(logs))
        assert done.returncode == 0, done.stderr[-2000:]
        assert _settled_summary(remote, truth(all_hits), timeout=120) == truth(all_hits)

        forgot = _opens(env, "forget", "--sid", victim)  # the worker is running and writing
        assert forgot.returncode == 0, forgot.stderr[-2000:]
        assert f"removed {n_victim} hits" in forgot.stdout
        assert _rows_of(remote, victim) == (0, 0)
        assert _summary(remote) == expected_rest
        check(remote, "opens", rest)
        # Before any new hit of theirs arrives, the worker's refresh erases their table state.
        assert _tombstoned(env, victim, timeout=60)

        # The worker drops the subscriber's hits from a forced re-run before dedupe.
        again = _opens(env, "backfill", "--force", str(logs))
        assert again.returncode == 0, again.stderr[-2000:]
        worker.wait_for(SUPPRESSED, n_victim, timeout=120)
        dropped = len(truth_hits(reqs)) - n_victim
        worker.wait_for("opens_duplicates_dropped_total", dropped, timeout=120)
        assert _rows_of(remote, victim) == (0, 0)
        check(remote, "opens", rest)
    finally:
        worker.stop()

    # The first worker's state of the subscriber still ends in a tombstone in its changelog.
    assert _tombstoned(env, victim, timeout=0)
    brokers = env["OPENS_KAFKA_BROKERS"]

    # A Kafka replay: a new group (and empty state) reads the whole hits topic again, including
    # the subscriber's hits published before they were forgotten.
    replay_env = worker_env({**shared, "OPENS_APP_ID": unique("replay")}, tmp_path / "replay")
    replay = WorkerProcess(
        replay_env, f"http://127.0.0.1:{replay_env['OPENS_WEB_PORT']}", tmp_path / "b.log"
    )
    replay.start()
    try:
        in_topic = sum(h.sid == victim for h in truth_hits(seen)) + 2 * n_victim
        replay.wait_for(SUPPRESSED, in_topic, timeout=300)
        replay.wait_for("opens_sink_rows_total", len(rest), timeout=300)
        assert _rows_of(remote, victim) == (0, 0)
        check(remote, "opens", rest)
    finally:
        replay.stop()

    direct = _opens(env, "backfill", "--direct", "--force", str(logs))
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert _rows_of(remote, victim) == (0, 0)
    check(remote, "opens", rest)

    # Dead letters: the raw record is kept, its client IP treated (default: truncate).
    dead = _consume(brokers, f"{shared['OPENS_TOPIC_HITS']}-dead-letters")
    bodies = [json.loads(v) for _, v in dead if v is not None]
    assert {b["reason"] for b in bodies} >= {"bad_timestamp", "field_count"}
    for body in bodies:
        raw = base64.b64decode(body["raw"]).decode()
        assert "198.51.100.77" not in raw
        assert "198.51.100.0" in raw
        if body["reason"] == "bad_timestamp":
            assert raw.split("\t")[FIELDS.index("c-ip")] == "198.51.100.0"
            assert "not-a-time" in raw  # otherwise as it came, for debugging
