"""Two workers share a 4-shard stream through Kafka's group assignment; one is killed (-9)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import clickhouse_connect
import pytest

from processor.demo import Request, ensure_stream, record_for
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.settings import load_settings
from tests.conftest import free_port, unique

pytestmark = pytest.mark.integration


def requests(n: int, seed: int) -> list[Request]:
    rnd = random.Random(seed)
    now = time.time()
    return [
        Request(
            f"{seed}-{i}-{rnd.getrandbits(40):010x}==",
            round(now - rnd.uniform(0, 300), 3),
            f"sub-{rnd.randint(1, 40)}",
            rnd.choice(["c1", "c2", "c3"]),
        )
        for i in range(n)
    ]


def put(kinesis: Any, stream: str, reqs: list[Request], fields: tuple[str, ...]) -> None:
    rnd = random.Random(1)
    data = [record_for(r, fields, rnd) for r in reqs]
    for i in range(0, len(data), 250):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": d, "PartitionKey": f"pk-{i + j}"} for j, d in enumerate(data[i : i + 250])
            ],
        )


def kinesis_total(worker: WorkerProcess) -> float:
    return sum(
        v for k, v in worker.metrics().items() if k.startswith("opens_kinesis_records_total")
    )


def shards_read(worker: WorkerProcess) -> set[str]:
    return {
        k.split('shard="')[1].split('"')[0]
        for k, v in worker.metrics().items()
        if k.startswith("opens_kinesis_records_total") and v > 0
    }


def ids_in(chdb_dir: Path) -> list[str]:
    script = (
        "import json,sys,clickhouse_connect\n"
        "c=clickhouse_connect.get_client(dsn='chdb://'+sys.argv[1])\n"
        # A worker killed before its first write never made the schema: it holds no hits.
        "ok=int(c.command('EXISTS TABLE opens.hits'))\n"
        "q=c.query('SELECT request_id FROM opens.hits') if ok else None\n"
        "print(json.dumps([r[0] for r in q.result_rows] if q else []))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(chdb_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ids: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return ids


def merged_summary(dirs: list[Path], tmp: Path) -> dict[str, tuple[int, int]]:
    """Union every worker's raw hits into one fresh ClickHouse and read campaign_summary."""
    script = (
        "import json,sys,clickhouse_connect\n"
        "from processor.sinks.clickhouse.schema import apply_migrations\n"
        "from processor.sinks.clickhouse.sink import HIT_COLUMNS as cols\n"
        "parts=[]\n"
        "for d in sys.argv[2:]:\n"
        "    c=clickhouse_connect.get_client(dsn='chdb://'+d)\n"
        "    if int(c.command('EXISTS TABLE opens.hits')):\n"
        # A worker killed while it migrated holds an older hits: read the columns it has.
        '        have={r[0] for r in c.query("SELECT name FROM system.columns WHERE "\n'
        "            \"database='opens' AND table='hits'\").result_rows}\n"
        "        use=[x for x in cols if x in have]\n"
        "        sql='SELECT ' + ','.join(use) + ' FROM opens.hits'\n"
        "        parts.append((use, c.query(sql).result_rows))\n"
        "    c.close()\n"
        "m=clickhouse_connect.get_client(dsn='chdb://'+sys.argv[1])\n"
        "apply_migrations(m,'opens')\n"
        "for use, rows in parts:\n"
        "    m.insert('hits', rows, column_names=use, database='opens')\n"
        "q=m.query('SELECT campaign, opens, unique_opens FROM opens.campaign_summary')\n"
        "print(json.dumps(q.result_rows))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp / "merged"), *(str(d / "clickhouse") for d in dirs)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return {r[0]: (r[1], r[2]) for r in json.loads(out.stdout.strip().splitlines()[-1])}


def pipeline_env(stack: LocalStack, stream: str) -> dict[str, str]:
    """One pipeline's worth of settings: private topics and group, quick failure detection."""
    return {
        **os.environ,
        **stack.env(),
        "OPENS_KINESIS_STREAM": stream,
        "OPENS_APP_ID": unique("app"),
        "OPENS_TOPIC_HITS": unique("hits"),
        "OPENS_TOPIC_SHARDS": unique("shards"),
        "OPENS_KAFKA_SESSION_TIMEOUT": "10",
        "OPENS_SINK_FLUSH_SECONDS": "0.2",
        "OPENS_KINESIS_POLL_INTERVAL": "0.3",
        "OPENS_KINESIS_REFRESH_SECONDS": "2",
    }


def worker_env(shared: dict[str, str], data_dir: Path) -> dict[str, str]:
    return {
        **shared,
        "OPENS_DATA_DIR": str(data_dir),
        "OPENS_WEB_PORT": str(free_port()),
        "OPENS_QUERY_PORT": str(free_port()),
    }


def test_two_workers_split_shards_and_survive_kill_9(stack: LocalStack, tmp_path: Path) -> None:
    stream = unique("scale")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=4)
    shared = pipeline_env(stack, stream)
    workers = []
    for name in ("a", "b"):
        env = worker_env(shared, tmp_path / name)
        w = WorkerProcess(
            env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / f"{name}.log"
        )
        w.start()
        workers.append(w)
    a, b = workers
    fields = load_settings().realtime_fields  # the default selection
    try:
        # Both in the group and the rebalance settled: every ownership partition has a reader.
        deadline = time.monotonic() + 90
        owned = [0.0, 0.0]
        while time.monotonic() < deadline:
            owned = [w.metrics().get("opens_owned_shard_partitions", 0.0) for w in workers]
            if all(owned) and sum(owned) == 4:
                break
            time.sleep(0.5)
        assert all(owned) and sum(owned) == 4, f"partitions owned by a, b: {owned}"
        first = requests(300, seed=1)
        put(kinesis, stream, first, fields)
        deadline = time.monotonic() + 90
        while kinesis_total(a) + kinesis_total(b) < 300 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert kinesis_total(a) + kinesis_total(b) >= 300
        split_a, split_b = shards_read(a), shards_read(b)
        assert split_a and split_b, "both workers should own shards"
        assert not split_a & split_b, "a shard was read by both workers at once"

        b.kill()  # kill -9: no leave-group, no flush
        second = requests(300, seed=2)
        put(kinesis, stream, second, fields)
        before = kinesis_total(a)
        deadline = time.monotonic() + 120
        while shards_read(a) != split_a | split_b and time.monotonic() < deadline:
            time.sleep(0.5)
        assert shards_read(a) == split_a | split_b, "the killed worker's shards were not taken over"
        # Every request reaches ClickHouse: b's before it died, a's (now all shards) after.
        want = {r.request_id for r in first + second}
        in_b = set(ids_in(tmp_path / "b" / "clickhouse"))
        remote = clickhouse_connect.get_client(
            host="127.0.0.1", port=int(a.env["OPENS_QUERY_PORT"]), database="opens"
        )
        deadline = time.monotonic() + 120
        seen: set[str] = set()
        while not want <= seen and time.monotonic() < deadline:
            time.sleep(1)
            seen = in_b | {r[0] for r in remote.query("SELECT request_id FROM hits").result_rows}
        assert want <= seen, f"{len(want - seen)} requests never reached ClickHouse"
        assert kinesis_total(a) > before
    finally:
        for w in workers:
            w.stop()
    summary = merged_summary([tmp_path / "a", tmp_path / "b"], tmp_path)
    truth: dict[str, tuple[set[str], set[str]]] = {}
    for r in first + second:
        ids, subs = truth.setdefault(r.cid, (set(), set()))
        ids.add(r.request_id)
        subs.add(r.sid)
    assert summary == {c: (len(ids), len(subs)) for c, (ids, subs) in truth.items()}


def test_kill_9_mid_stream_then_restart_counts_exactly(stack: LocalStack, tmp_path: Path) -> None:
    stream = unique("crash")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=2)
    env = worker_env(pipeline_env(stack, stream), tmp_path / "w")
    url = f"http://127.0.0.1:{env['OPENS_WEB_PORT']}"
    fields = (
        "timestamp",
        "c-ip",
        "sc-status",
        "cs-method",
        "cs-uri-stem",
        "x-edge-request-id",
        "cs-user-agent",
        "cs-uri-query",
        "c-country",
    )
    # A custom, minimal field selection: the worker decodes what the log config selected.
    env["OPENS_REALTIME_FIELDS"] = ",".join(reversed(fields))
    reqs = requests(1500, seed=3)
    put(kinesis, stream, reqs[:1000], fields)
    worker = WorkerProcess(env, url, tmp_path / "w1.log")
    worker.start()
    try:
        worker.wait_for("opens_sink_rows_total", 1, timeout=180)
        worker.kill()  # mid-stream: some batches forwarded, some checkpoints not yet written
        put(kinesis, stream, reqs[1000:], fields)
        worker = WorkerProcess(env, url, tmp_path / "w2.log")
        worker.start()
        port = int(env["OPENS_QUERY_PORT"])
        want = {r.request_id for r in reqs}
        deadline = time.monotonic() + 120
        seen: set[str] = set()
        remote = None
        while not want <= seen and time.monotonic() < deadline:
            time.sleep(1)
            with contextlib.suppress(Exception):  # the restarted endpoint is not up yet
                remote = remote or clickhouse_connect.get_client(port=port, database="opens")
                seen = {r[0] for r in remote.query("SELECT request_id FROM hits").result_rows}
        assert want <= seen, f"{len(want - seen)} requests lost"
        got = dict(
            (r[0], (r[1], r[2]))
            for r in remote.query(
                "SELECT campaign, opens, unique_opens FROM campaign_summary"
            ).result_rows
        )
    finally:
        worker.stop()
    truth: dict[str, tuple[set[str], set[str]]] = {}
    for r in reqs:
        ids, subs = truth.setdefault(r.cid, (set(), set()))
        ids.add(r.request_id)
        subs.add(r.sid)
    assert got == {c: (len(ids), len(subs)) for c, (ids, subs) in truth.items()}
