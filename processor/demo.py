"""`opens demo`: the walking skeleton end to end on the local stack.

Kinesis (moto) → worker's Kinesis source → Kafka → Faust agents → ClickHouse (chDB), with a
small generated workload whose truth is known, then the rows that landed are printed.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from rich.table import Table

from processor.cli.output import console, err_console
from processor.core.fields import canonical_order
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.errors import OpensError
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

UAS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
)


def render_realtime(fields: Iterable[str], values: Mapping[str, str]) -> bytes:
    """One CloudFront real-time record: selected fields in canonical order, `-` when empty."""
    return ("\t".join(values.get(f) or "-" for f in canonical_order(fields)) + "\n").encode()


@dataclass(frozen=True)
class Request:
    request_id: str
    ts: float
    sid: str
    cid: str
    path: str = "/o.gif"


def generate(n: int, seed: int = 7) -> list[Request]:
    rnd = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    now = time.time()
    return [
        Request(
            request_id=uuid.UUID(int=rnd.getrandbits(128)).hex[:20] + "==",
            ts=round(now - rnd.uniform(0, 600), 3),
            sid=f"sub-{rnd.randint(1, 8)}",
            cid=rnd.choice(["welcome-2026", "black-friday"]),
        )
        for _ in range(n)
    ]


def record_for(req: Request, fields: Iterable[str], rnd: random.Random) -> bytes:
    query = f"sid={quote(req.sid)}&cid={quote(req.cid)}&cat=news"
    return render_realtime(
        fields,
        {
            "timestamp": f"{req.ts:.3f}",
            "c-ip": f"203.0.113.{rnd.randint(1, 254)}",
            "sc-status": "200",
            "sc-bytes": "43",
            "cs-method": "GET",
            "cs-uri-stem": f"{req.path}?{query}",
            "cs-uri-query": query,
            "x-edge-location": "FRA56-P1",
            "x-edge-request-id": req.request_id,
            "time-taken": "0.001",
            "cs-user-agent": quote(rnd.choice(UAS), safe="/;()"),
            "c-country": rnd.choice(["DE", "US", "FR"]),
        },
    )


def ensure_stream(kinesis: KinesisClient, name: str, shards: int = 1) -> None:
    """Create the stream unless it exists, and wait until it is active."""
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    except kinesis.exceptions.ResourceInUseException:
        return
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def run_demo(settings: Settings, *, keep_running: bool = False) -> None:
    import boto3

    stack = LocalStack(settings)
    was_up = {c.name for c in stack.status() if c.state == "healthy"}
    started_stack = not {"kafka", "moto"} <= was_up
    worker: WorkerProcess | None = None
    try:
        with err_console.status("starting the local stack…"):
            stack.up()
        env = {**os.environ, **stack.env()}
        os.environ.update(stack.env())  # boto3 in this process talks to moto too
        kinesis = boto3.client("kinesis")
        ensure_stream(kinesis, settings.kinesis_stream)

        rnd = random.Random(11)  # noqa: S311 - reproducible test data
        requests = generate(24)
        records = [record_for(r, settings.realtime_fields, rnd) for r in requests]
        records.append(records[0])  # a duplicate delivery: counted once
        records.append(b"garbage that is not a CloudFront record\n")  # goes to the dead letters
        kinesis.put_records(
            StreamName=settings.kinesis_stream,
            Records=[{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(records)],
        )
        console.print(f"put {len(records)} records into Kinesis stream {settings.kinesis_stream}")

        worker = WorkerProcess(env, settings.web_url, settings.data_dir / "demo" / "worker.log")
        worker.start()
        with err_console.status("worker: Kinesis → Kafka → Faust → ClickHouse…"):
            worker.wait_for("opens_sink_rows_total", len(records) - 1, timeout=120)
        worker.stop()

        target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
        client = connect(target)
        try:
            rows = client.query(
                "SELECT request_id, ts, cid, sid, country, user_agent FROM {db:Identifier}.hits "
                "FINAL WHERE request_id IN {ids:Array(String)} ORDER BY ts",
                parameters={"db": target.database, "ids": [r.request_id for r in requests]},
            ).result_rows
        finally:
            client.close()
        table = Table(
            "request_id",
            "ts (UTC)",
            "campaign",
            "subscriber",
            "country",
            "user agent",
            title="rows that went Kinesis → Kafka → Faust → ClickHouse",
        )
        for row in rows:
            table.add_row(row[0], str(row[1]), row[2], row[3], row[4], row[5][:40])
        console.print(table)
        truth = len({r.request_id for r in requests})
        verdict = "equal to" if len(rows) == truth else "DIFFERENT from"
        console.print(f"{len(rows)} distinct hits in ClickHouse, {verdict} the {truth} generated.")
        if len(rows) != truth:
            msg = "the demo's numbers do not match the generated truth"
            raise OpensError(msg)
    finally:
        if worker is not None:
            worker.stop()
        if started_stack and not keep_running:
            stack.down()
