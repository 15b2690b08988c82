"""The default (Kafka) mode end to end: `opens backfill` publishes, a running worker stores.

Part of the requests reach the worker in real time through Kinesis first; the backfill then
publishes every request from the standard logs to the hits topic the worker consumes. The
worker's `campaign_summary` must equal the truth over every request once, with first/last opens
over every sighting — and running the backfill again (or with --force) must change nothing.
"""

from __future__ import annotations

import contextlib
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

from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.demo import ensure_stream
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
from tests.core.render import realtime_record
from tests.factories import truth
from tests.test_worker_scaleout import pipeline_env, worker_env

pytestmark = pytest.mark.integration

SUMMARY_SQL = (
    "SELECT campaign, opens, unique_opens, human_unique_opens, machine_opens, invalid_hits,"
    " toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(last_open_at)"
    " FROM campaign_summary"
)
KEYS = (
    "opens",
    "unique_opens",
    "human_unique_opens",
    "machine_opens",
    "invalid_hits",
    "first_open_at",
    "last_open_at",
)


def _backfill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "backfill", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _wait_for_ids(port: int, want: set[str], timeout: float) -> Any:
    """A client on the worker's query endpoint once every id in ``want`` is in ``hits``."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    remote = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the endpoint is not up yet
            remote = remote or clickhouse_connect.get_client(port=port, database="opens")
            seen = {r[0] for r in remote.query("SELECT request_id FROM hits").result_rows}
            if want <= seen:
                return remote
        time.sleep(1)
    msg = f"{len(want - seen)} of {len(want)} requests never reached the worker's ClickHouse"
    raise AssertionError(msg)


def _summary(remote: Any) -> dict[str, dict[str, Any]]:
    rows = remote.query(SUMMARY_SQL).result_rows
    return {r[0]: dict(zip(KEYS, r[1:], strict=True)) for r in rows}


def _settled_summary(remote: Any, expected: Any, timeout: float = 30) -> dict[str, Any]:
    """The summary once it equals ``expected`` (else the last one, after ``timeout``).

    A row of ``hits`` is visible as soon as its part is committed, which can be a moment
    before the parts the same insert writes through the materialized views (they are filled in
    parallel), so "every id is in hits" does not yet mean "every view has it".
    """
    deadline = time.monotonic() + timeout
    found = _summary(remote)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = _summary(remote)
    return found


def test_backfill_through_a_running_worker_overlapping_real_time(
    stack: LocalStack, tmp_path: Path
) -> None:
    rnd = random.Random(31)
    reqs = make_requests(rnd, 1500)
    # Real time saw about 70 % of the requests, with millisecond timestamps.
    seen = with_ms([r for r in reqs if rnd.random() < 0.7], rnd)
    stream = "bf-" + os.urandom(4).hex()
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=1)
    data = [realtime_record(r.req, DEFAULT_REALTIME_FIELDS) for r in seen]
    for i in range(0, len(data), 250):
        kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": d, "PartitionKey": f"pk-{i + j}"} for j, d in enumerate(data[i : i + 250])
            ],
        )
    env = worker_env(pipeline_env(stack, stream), tmp_path / "worker")
    env["OPENS_PIXEL_SECRETS"] = SECRET.decode()
    port = int(env["OPENS_QUERY_PORT"])
    logs = tmp_path / "logs"
    cloudfront_files(reqs).write_to(logs)

    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    worker.start()
    try:
        remote = _wait_for_ids(port, {h.request_id for h in truth_hits(seen)}, timeout=300)
        # The backfill's own manifest lives beside the worker's data (its embedded ClickHouse
        # belongs to the worker), exactly as `opens backfill` arranges it.
        env_bf = {**env, "OPENS_DATA_DIR": str(tmp_path / "backfill")}
        done = _backfill(env_bf, str(logs))
        assert done.returncode == 0, done.stderr[-2000:]
        _wait_for_ids(port, {h.request_id for h in truth_hits(reqs)}, timeout=300)
        expected = truth(truth_hits(reqs) + realtime_truth_hits(seen))
        assert _settled_summary(remote, expected) == expected
        hits = remote.query("SELECT count() FROM hits FINAL").result_rows[0][0]
        assert hits == len(truth_hits(reqs))

        # Again, and with --force: nothing new is counted.
        again = _backfill(env_bf, str(logs))
        assert again.returncode == 0 and '"objects_already_done": 8' in again.stderr
        written = worker.wait_for("opens_sink_rows_total", len(truth_hits(reqs)), timeout=60)
        dropped = worker.metrics().get("opens_duplicates_dropped_total", 0.0)
        forced = _backfill(env_bf, str(logs), "--force")
        assert forced.returncode == 0, forced.stderr[-2000:]
        # Every hit published again is recognised by the worker as already written: dropped
        # before the sink, so nothing new is written and the numbers stay the same.
        worker.wait_for("opens_duplicates_dropped_total", dropped + len(truth_hits(reqs)), 300)
        assert worker.metrics()["opens_sink_rows_total"] == written
        assert _settled_summary(remote, expected) == expected
    finally:
        worker.stop()
