"""Fault tests on the real stack: ClickHouse unreachable for a while, the Kafka broker restarted.

Each test runs one worker subprocess reading a moto Kinesis stream, breaks one service in the
middle of the stream, brings it back, and ends with ``campaign_summary`` equal to the truth
computed from the generated requests. Every process a test starts is stopped by PID in a
finalizer, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import clickhouse_connect
import pytest

from processor.demo import Request, ensure_stream, record_for
from processor.devstack.chdb_server import ChdbServer
from processor.devstack.kafka import KafkaBroker
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.settings import load_settings
from processor.sources.checkpoints import KafkaCheckpoints
from tests.conftest import REPO, free_port, unique
from tests.test_worker_scaleout import kinesis_total, pipeline_env, requests, worker_env

pytestmark = pytest.mark.integration


def put_collecting(kinesis: Any, stream: str, reqs: list[Request]) -> dict[str, str]:
    """Put the requests' records; returns the last sequence number Kinesis gave each shard."""
    rnd = random.Random(5)
    fields = load_settings().realtime_fields
    data = [record_for(r, fields, rnd) for r in reqs]
    last: dict[str, str] = {}
    for i in range(0, len(data), 250):
        out = kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": d, "PartitionKey": f"pk-{i + j}"} for j, d in enumerate(data[i : i + 250])
            ],
        )
        assert out.get("FailedRecordCount", 0) == 0
        for rec in out["Records"]:
            shard, seq = rec["ShardId"], rec["SequenceNumber"]
            if shard not in last or int(seq) > int(last[shard]):
                last[shard] = seq
    return last


def expected_summary(reqs: list[Request]) -> dict[str, tuple[int, ...]]:
    """campaign → (opens, unique_opens, invalid_hits, first_open_at ms, last_open_at ms)."""
    by_cid: dict[str, list[Request]] = {}
    for r in reqs:
        by_cid.setdefault(r.cid, []).append(r)
    out: dict[str, tuple[int, ...]] = {}
    for cid, rs in by_cid.items():
        ms = [round(r.ts * 1000) for r in rs]
        out[cid] = (
            len({r.request_id for r in rs}),
            len({r.sid for r in rs}),
            0,  # every generated pixel is unsigned ("missing"): none is invalid
            min(ms),
            max(ms),
        )
    return out


SUMMARY_SQL = (
    "SELECT campaign, opens, unique_opens, invalid_hits, toUnixTimestamp64Milli(first_open_at),"
    " toUnixTimestamp64Milli(last_open_at) FROM campaign_summary"
)


def read_summary(client: Any) -> dict[str, tuple[int, ...]]:
    return {r[0]: tuple(int(v) for v in r[1:]) for r in client.query(SUMMARY_SQL).result_rows}


def wait_for_ids(client_of: Any, want: set[str], worker: WorkerProcess, timeout: float) -> None:
    """Poll ClickHouse until every request id is there; fail clearly if the worker died."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        assert worker.proc is not None
        assert worker.proc.poll() is None, f"worker exited; see {worker.log_file}"
        with contextlib.suppress(Exception):  # an endpoint still starting
            rows = client_of().query("SELECT DISTINCT request_id FROM hits").result_rows
            seen = {r[0] for r in rows}
        if want <= seen:
            return
        time.sleep(1)
    pytest.fail(f"{len(want - seen)} of {len(want)} requests never reached ClickHouse")


def lazy_client(host: str, port: int) -> Callable[[], Any]:
    """A client made on first use: the database (or the endpoint) may not exist yet."""
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(clickhouse_connect.get_client(host=host, port=port, database="opens"))
        return made[0]

    return get


def metric_sum(worker: WorkerProcess, prefix: str) -> float:
    return sum(v for k, v in worker.metrics().items() if k.startswith(prefix))


def wait_metric(worker: WorkerProcess, prefix: str, at_least: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        assert worker.proc is not None
        assert worker.proc.poll() is None, f"worker exited; see {worker.log_file}"
        value = metric_sum(worker, prefix)
        if value >= at_least:
            return value
        time.sleep(0.25)
    pytest.fail(f"{prefix} reached {value:g}, not {at_least:g}; see {worker.log_file}")


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_clickhouse_unreachable_then_back(
    stack: LocalStack,
    chdb_server: ChdbServer,
    worker_proc: list[WorkerProcess],
    tmp_path: Path,
    how: str,
) -> None:
    stream = unique("chdown")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=2)
    env = worker_env(pipeline_env(stack, stream), tmp_path / "w")
    env["OPENS_CLICKHOUSE_URL"] = chdb_server.url("opens")
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    reqs = requests(2000, seed=21)
    put_collecting(kinesis, stream, reqs[:1000])
    worker.start()
    worker_proc.append(worker)
    worker.wait_for("opens_sink_rows_total", 1, timeout=120)

    # Connection refused from now on; SIGKILL may also cut an insert in flight.
    assert chdb_server.kill() if how == "sigkill" else chdb_server.stop()
    put_collecting(kinesis, stream, reqs[1000:])
    # The worker keeps reading Kinesis into Kafka while its sink fails and retries.
    wait_metric(worker, "opens_sink_failures_total", 3, timeout=90)
    wait_metric(worker, "opens_kinesis_records_total", 2000, timeout=90)
    rows_while_down = metric_sum(worker, "opens_sink_rows_total")
    time.sleep(3)  # a few more seconds of outage
    assert metric_sum(worker, "opens_sink_rows_total") == rows_while_down, "wrote while down?"

    chdb_server.start()  # same data directory, same port
    chdb_server.wait_healthy(60)
    client = clickhouse_connect.get_client(
        host=chdb_server.host, port=chdb_server.port, database="opens"
    )
    wait_for_ids(lambda: client, {r.request_id for r in reqs}, worker, timeout=180)
    assert read_summary(client) == expected_summary(reqs)
    assert worker.stop() == 0, worker.log_file.read_text()[-3000:]
    assert client.command("SELECT count() FROM hits FINAL") == len(reqs)


def test_clickhouse_down_when_the_worker_starts(
    stack: LocalStack,
    chdb_server: ChdbServer,
    worker_proc: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    """No ClickHouse at start-up delays writes; it does not stop the worker."""
    stream = unique("chlate")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=1)
    env = worker_env(pipeline_env(stack, stream), tmp_path / "w")
    env["OPENS_CLICKHOUSE_URL"] = chdb_server.url("opens")
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    reqs = requests(500, seed=23)
    put_collecting(kinesis, stream, reqs)
    chdb_server.stop()
    worker.start()
    worker_proc.append(worker)
    wait_metric(worker, "opens_sink_failures_total", 2, timeout=120)
    assert worker.proc is not None
    assert worker.proc.poll() is None, f"worker exited; see {worker.log_file}"
    chdb_server.start()
    chdb_server.wait_healthy(60)
    client = lazy_client(chdb_server.host, chdb_server.port)
    wait_for_ids(client, {r.request_id for r in reqs}, worker, timeout=180)
    assert read_summary(client()) == expected_summary(reqs)
    assert worker.stop() == 0, worker.log_file.read_text()[-3000:]


def read_checkpoints(bootstrap: str, topic: str, partitions: int) -> dict[str, str]:
    async def nothing(shard: str, partition: int, value: dict[str, str]) -> None:
        raise AssertionError("read only")

    store = KafkaCheckpoints(bootstrap, topic, partitions, nothing)
    asyncio.run(store.refresh())
    return dict(store.values)


@pytest.fixture(scope="module")
def _module_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    settings = load_settings()
    broker = KafkaBroker(
        home=tmp_path_factory.mktemp("kafka"),
        cache_dir=REPO / ".cache",
        version=settings.kafka_version,
        host="127.0.0.1",
        port=free_port(),
        controller_port=free_port(),
    )
    try:
        yield broker
    finally:
        broker.stop()  # by PID, whatever state a failed test left it in


@pytest.fixture
def private_kafka(_module_kafka: KafkaBroker) -> KafkaBroker:
    """A broker of this module's own: restarting it cannot disturb the shared stack. Started
    (again) for each test, in case an earlier one failed while it was down."""
    _module_kafka.start()
    _module_kafka.wait_healthy(90)
    return _module_kafka


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_kafka_broker_restarted_mid_stream(
    stack: LocalStack,
    private_kafka: KafkaBroker,
    worker_proc: list[WorkerProcess],
    tmp_path: Path,
    how: str,
) -> None:
    stream = unique("kafkadown")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=2)
    env = worker_env(pipeline_env(stack, stream), tmp_path / "w")
    env["OPENS_KAFKA_BROKERS"] = private_kafka.bootstrap
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    reqs = requests(2000, seed=31)
    last_seq = put_collecting(kinesis, stream, reqs[:1000])
    worker.start()
    worker_proc.append(worker)
    worker.wait_for("opens_sink_rows_total", 1, timeout=120)

    if how == "sigkill":
        private_kafka.process.kill()
    else:
        assert private_kafka.stop()
    for shard, seq in put_collecting(kinesis, stream, reqs[1000:]).items():
        last_seq[shard] = seq if int(seq) > int(last_seq.get(shard, "0")) else last_seq[shard]
    time.sleep(3)  # the broker stays down a while longer; the worker must ride it out
    assert worker.proc is not None
    assert worker.proc.poll() is None, f"worker exited with Kafka down; see {worker.log_file}"
    private_kafka.start()  # same data directory and ports
    private_kafka.wait_healthy(90)

    client = lazy_client("127.0.0.1", int(env["OPENS_QUERY_PORT"]))
    wait_for_ids(client, {r.request_id for r in reqs}, worker, timeout=240)
    got = read_summary(client())
    assert kinesis_total(worker) >= len(reqs)
    # Every shard's checkpoint reaches its last record, and no further (written after acks).
    deadline = time.monotonic() + 60
    checkpoints: dict[str, str] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):  # a read that found nothing: try again
            checkpoints = read_checkpoints(
                private_kafka.bootstrap, env["OPENS_TOPIC_SHARDS"], load_settings().topic_partitions
            )
        if checkpoints == last_seq:
            break
        time.sleep(1)
    assert worker.stop() == 0, worker.log_file.read_text()[-3000:]
    assert got == expected_summary(reqs)
    assert checkpoints == last_seq


def test_kafka_down_when_the_worker_starts(
    stack: LocalStack,
    private_kafka: KafkaBroker,
    worker_proc: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    stream = unique("kafkalate")
    kinesis = boto3.client("kinesis")
    ensure_stream(kinesis, stream, shards=1)
    env = worker_env(pipeline_env(stack, stream), tmp_path / "w")
    env["OPENS_KAFKA_BROKERS"] = private_kafka.bootstrap
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    reqs = requests(300, seed=37)
    put_collecting(kinesis, stream, reqs)
    assert private_kafka.stop()
    worker.start()
    worker_proc.append(worker)
    time.sleep(8)  # the worker starts with no broker to talk to
    assert worker.proc is not None
    assert worker.proc.poll() is None, f"worker exited with Kafka down; see {worker.log_file}"
    private_kafka.start()
    private_kafka.wait_healthy(90)
    client = lazy_client("127.0.0.1", int(env["OPENS_QUERY_PORT"]))
    wait_for_ids(client, {r.request_id for r in reqs}, worker, timeout=180)
    assert read_summary(client()) == expected_summary(reqs)
    assert worker.stop() == 0, worker.log_file.read_text()[-3000:]


def test_worker_waiting_for_kafka_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM while no broker has answered yet: a clean exit, not a kill by signal."""
    nobody = f"127.0.0.1:{free_port()}"  # no broker listens here
    env = worker_env({**os.environ, "OPENS_KAFKA_BROKERS": nobody}, tmp_path)
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while "does not answer" not in worker.log_file.read_text() and time.monotonic() < deadline:
            assert worker.proc is not None
            assert worker.proc.poll() is None, worker.log_file.read_text()[-2000:]
            time.sleep(0.2)
        assert "does not answer" in worker.log_file.read_text()
    finally:
        code = worker.stop()
    assert code == 0, worker.log_file.read_text()[-2000:]


def test_worker_gives_up_on_kafka_with_one_line(tmp_path: Path) -> None:
    """A broker that stays away: a one-line reason and a non-zero exit (DESIGN §4)."""
    nobody = f"127.0.0.1:{free_port()}"
    env = worker_env({**os.environ, "OPENS_KAFKA_BROKERS": nobody}, tmp_path)
    env["OPENS_KAFKA_START_WAIT"] = "2"
    worker = WorkerProcess(env, f"http://127.0.0.1:{env['OPENS_WEB_PORT']}", tmp_path / "w.log")
    worker.start()
    assert worker.proc is not None
    try:
        code = worker.proc.wait(120)
    finally:
        worker.stop()
    out = worker.log_file.read_text()
    assert code != 0, out[-2000:]
    assert f"Kafka at {nobody} did not answer within 2s" in out
    assert "Traceback" not in out
