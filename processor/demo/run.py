"""`opens demo`, step by step, on the local stack.

stack up → schema apply → infra apply (moto) → sends loaded → worker started → traffic through
the local edge over HTTP → standard logs backfilled from S3 → the report, checked against the
traffic's truth → the dashboard address. Each run gets its own stream, topics, consumer group,
log prefix and embedded ClickHouse, so a run on a stack that was already up counts only its own
traffic. Everything started here is stopped here, by PID (Ctrl-C included).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra import runner
from infra.settings import InfraSettings, load_infra_settings
from processor.analytics.report import campaign_report
from processor.cli.output import console, err_console, is_terminal
from processor.demo.check import Counts, Mismatch, compare, counts, overcounted
from processor.devstack.process import free_port, port_is_free
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.edge.server import EdgeThread
from processor.edge.setup import build_edge
from processor.errors import OpensError, StackError
from processor.safe_text import rich_text
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect
from processor.traffic import TrafficResult, run_traffic
from processor.traffic.truth import Expected

__all__ = ["DemoOptions", "DemoRun", "run_demo"]

DEMO_SECRET = "demo-pixel-secret-not-for-production"  # noqa: S105 - the local demo's key


class DemoMismatch(OpensError):
    """The pipeline's numbers differ from the traffic's truth."""


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 2026
    subscribers: int = 400
    drop_realtime: float = 0.1
    duplicate_realtime: float = 0.05
    converge_timeout: float = 180.0
    serve: bool = False  # keep the worker (and its dashboard) up until Ctrl-C
    keep_running: bool = False  # leave the stack up afterwards


@dataclass
class Outcome:
    traffic: TrafficResult
    expected: Expected
    got: Counts
    mismatches: list[Mismatch]
    stats: dict[str, Any] = field(default_factory=dict)


def _free(host: str, port: int) -> int:
    """``port`` if free, else any free port (a developer may run a worker already)."""
    return port if port_is_free(host, port) else free_port(host)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    with err_console.status(f"{title}…"):
        yield
    console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - started:.1f}s)[/]")


class DemoRun:
    """One demo run: its names, its processes, its steps."""

    def __init__(self, settings: Settings, options: DemoOptions) -> None:
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.stack = LocalStack(settings)
        self.dir = (settings.data_dir / "demo" / f"run-{self.run_id}").resolve()
        tag = f"opens-demo-{self.run_id}"
        host = settings.query_host
        self.settings = settings.model_copy(
            update={
                "data_dir": self.dir,
                "clickhouse_url": "",
                "kinesis_stream": tag,
                "app_id": tag,
                "topic_hits": f"{tag}-hits",
                "topic_shards": f"{tag}-shards",
                "topic_first_opens": f"{tag}-first-opens",
                "web_port": _free(settings.web_host, settings.web_port),
                "query_port": _free(host, settings.query_port),
            }
        )
        self.infra: InfraSettings = load_infra_settings(
            log_prefix=f"cloudfront/demo-{self.run_id}/", poll_interval=0.5
        )
        self.worker: WorkerProcess | None = None
        self.edge: EdgeThread | None = None
        self.started_stack = False

    # -- environment -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What every child process gets: the stack, this run's names, the demo secret."""
        s = self.settings
        return {
            **os.environ,
            **self.stack.env(),
            "OPENS_DATA_DIR": str(self.dir),
            "OPENS_KINESIS_STREAM": s.kinesis_stream,
            "OPENS_APP_ID": s.app_id,
            "OPENS_TOPIC_HITS": s.topic_hits,
            "OPENS_TOPIC_SHARDS": s.topic_shards,
            "OPENS_TOPIC_FIRST_OPENS": s.topic_first_opens,
            "OPENS_WEB_PORT": str(s.web_port),
            "OPENS_QUERY_PORT": str(s.query_port),
            "OPENS_PIXEL_SECRETS": DEMO_SECRET,
            "OPENS_SINK_FLUSH_SECONDS": "0.5",
            "OPENS_KINESIS_POLL_INTERVAL": "0.5",
            "OPENS_INFRA_LOG_PREFIX": self.infra.log_prefix,
        }

    def opens(self, *args: str, what: str) -> str:
        """Run one `opens` command as a child process; its output is kept in the run folder."""
        proc = subprocess.run(
            [sys.executable, "-m", "processor", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        log = self.dir / f"{args[0]}.log"
        log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            msg = f"{what} failed (exit {proc.returncode}): {tail[0]}"
            raise OpensError(msg, hint=f"see {log}")
        return proc.stdout

    # -- steps -------------------------------------------------------------------------------

    def stack_up(self) -> None:
        was_up = {c.name for c in self.stack.status() if c.state == "healthy"}
        self.started_stack = not {"kafka", "moto"} <= was_up
        self.stack.up()
        # boto3 in this process (infra, edge) talks to the same emulator.
        os.environ.update({k: v for k, v in self.stack.env().items() if k != "OPENS_DATA_DIR"})
        shutil.rmtree(self.dir.parent, ignore_errors=True)  # earlier runs' databases
        self.dir.mkdir(parents=True)

    def schema_and_sends(self, sends_csv: str) -> None:
        self.opens("schema", "apply", what="opens schema apply")
        path = self.dir / "sends.csv"
        path.write_text(sends_csv)
        self.opens("sends", "load", str(path), what="opens sends load")

    def infra_apply(self) -> str:
        env = runner.build_env(self.settings, self.infra, allow_missing_apis=True)
        applied = runner.apply(env)
        return applied.base_url or ""

    def start_worker(self, timeout: float = 120.0) -> None:
        self.worker = WorkerProcess(self.env(), self.settings.web_url, self.dir / "worker.log")
        self.worker.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.worker.proc
            if proc is not None and proc.poll() is not None:
                msg = f"the worker exited with status {proc.returncode}"
                raise StackError(msg, component="worker", hint=f"see {self.worker.log_file}")
            try:
                url = f"{self.settings.web_url}/healthz"  # http on loopback
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        msg = f"the worker was not ready within {timeout:.0f}s"
        raise StackError(msg, component="worker", hint=f"see {self.dir / 'worker.log'}")

    def start_edge(self) -> str:
        o = self.options
        edge = build_edge(
            self.settings.model_copy(update={"pixel_secrets": ()}),
            self.infra,
            drop_realtime=o.drop_realtime,
            duplicate_realtime=o.duplicate_realtime,
            seed=o.seed,
            flush_seconds=2.0,
        )
        self.edge = EdgeThread(edge)
        return self.edge.start()

    def send(self, url: str) -> TrafficResult:
        columns = (
            TextColumn("traffic through the edge"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("send", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return run_traffic(
                url,
                DEMO_SECRET.encode(),
                seed=self.options.seed,
                subscribers=self.options.subscribers,
                pixel_path=self.settings.pixel_path,
                progress=progress,
            )

    def stop_edge(self) -> tuple[dict[str, Any], frozenset[str]]:
        """Stop serving and flush both logs; the edge's counters and the real-time ids lost."""
        if self.edge is None:
            return {}, frozenset()
        self.edge.stop()
        return self.edge.edge.stats(), frozenset(self.edge.edge.dropped_ids)

    def backfill(self) -> None:
        source = f"s3://{self.infra.log_bucket}/{self.infra.log_prefix}"
        self.opens("backfill", source, what="opens backfill")

    def reader(self) -> tuple[Any, str]:
        """A client of the worker's read-only endpoint: never the embedded engine itself, which
        the worker owns (and which would read stale data if the worker had died)."""
        db = self.settings.clickhouse_database
        return connect(ClickHouseTarget(self.settings.query_url, db)), db

    def worker_alive(self) -> None:
        proc = self.worker.proc if self.worker else None
        if proc is not None and proc.poll() is not None:
            msg = f"the worker exited with status {proc.returncode}"
            raise StackError(msg, component="worker", hint=f"see {self.dir / 'worker.log'}")

    def worker_log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.dir / "worker.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no worker log)"

    def converge(self, exp: Expected) -> Counts:
        """Poll the views (through the worker's read-only endpoint) until they reach the
        truth, overshoot it, or the time is up; the last reading is returned either way."""
        client, db = self.reader()
        try:
            deadline = time.monotonic() + self.options.converge_timeout
            while True:
                self.worker_alive()
                got = counts(client, db)
                done = not compare(exp, got) or overcounted(exp, got)
                if done or time.monotonic() > deadline:
                    return got
                time.sleep(1.0)
        finally:
            client.close()

    def report(self) -> Table:
        client, db = self.reader()
        try:
            rep = campaign_report(client, db)
        finally:
            client.close()
        table = Table(title="opens report (campaign_summary)")
        for col in rep.columns:
            table.add_column(
                col.replace("_", " "), justify="left" if col == "campaign" else "right"
            )
        for row in rep.rows:
            cells = []
            for value, col in zip(row, rep.columns, strict=True):
                if value is None:
                    cells.append("-")
                elif col.endswith("_rate"):
                    cells.append(f"{value:.1%}")
                elif hasattr(value, "strftime"):
                    cells.append(value.strftime("%H:%M:%S"))
                else:
                    cells.append(str(value))
            table.add_row(*map(rich_text, cells))
        return table

    def close(self) -> None:
        """Stop what this run started, newest first."""
        if self.edge is not None:
            self.edge.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.started_stack and not self.options.keep_running:
            self.stack.down()


def run_pipeline(run: DemoRun) -> Outcome:
    """Every step up to the checked numbers (the worker is left running)."""
    o = run.options
    with step("local stack up (Kafka, moto)"):
        run.stack_up()
    from processor.traffic.mix import plan_traffic

    sends_csv = plan_traffic(
        o.seed, DEMO_SECRET.encode(), subscribers=o.subscribers, pixel_path=run.settings.pixel_path
    ).sends_csv()
    with step("schema applied, sends loaded"):
        run.schema_and_sends(sends_csv)
    with step("infra applied against the emulator (buckets, stream, IAM, distribution)"):
        run.infra_apply()
    with step("worker started (Kinesis → Kafka → Faust → ClickHouse)"):
        run.start_worker()
    url = run.start_edge()
    console.print(f"  edge (dev stand-in for CloudFront): {url}{run.settings.pixel_path}")
    started = time.monotonic()
    traffic = run.send(url)
    console.print(
        f"[green]✓[/] {len(traffic.sent):,} requests sent through the edge "
        f"[dim]({time.monotonic() - started:.1f}s)[/]"
    )
    with step("edge stopped, standard logs flushed to S3"):
        stats, lost = run.stop_edge()
    console.print(
        f"  real-time records: {stats['realtime_put']:,} put ({stats['realtime_dropped']:,} "
        f"dropped, {stats['realtime_duplicated']:,} put twice); standard log: "
        f"{stats['standard_lines']:,} lines in {stats['standard_objects']} objects"
    )
    exp = traffic.expected(realtime_lost=lost)
    with step("standard logs backfilled from S3 into the same pipeline"):
        run.backfill()
    with step("waiting for the views to settle"):
        got = run.converge(exp)
    return Outcome(traffic, exp, got, compare(exp, got), stats)


def _wait_for_ctrl_c() -> None:
    while True:
        time.sleep(3600)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, options: DemoOptions) -> None:
    """The demo; raises ``DemoMismatch`` (exit 1) when the numbers differ from the truth."""
    # SIGTERM (and SIGINT, even where a shell started us ignoring it) unwind through the
    # `finally` below, so every process the demo started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    run = DemoRun(settings, options)
    started = time.monotonic()
    try:
        outcome = run_pipeline(run)
        # Piped output has no terminal width; give the wide table room rather than squeeze it.
        (console if is_terminal() else Console(width=200)).print(run.report())
        exp = outcome.expected
        opens = sum(c["opens"] for c in exp.summary.values())
        if outcome.mismatches:
            for m in outcome.mismatches[:30]:
                console.print(f"  [red]✗[/] {m}")
            msg = f"{len(outcome.mismatches)} number(s) differ from the generator's truth"
            raise DemoMismatch(msg, hint=f"logs in {run.dir}")
        console.print(
            f"[bold green]✓ equal to the generator's truth[/]: {exp.requests:,} requests, "
            f"{exp.hits:,} pixel hits, {opens:,} opens across {len(exp.summary)} campaigns — "
            "campaign_summary, opens_by_client and opens_by_country all match "
            f"[dim](demo took {time.monotonic() - started:.0f}s)[/]"
        )
        dashboard = f"{run.settings.query_url}/dashboard"
        if options.serve:
            console.print(f"dashboard: [bold]{dashboard}[/]  (Ctrl-C stops everything)")
            _wait_for_ctrl_c()
        else:
            console.print(
                f"dashboard: {dashboard} (the demo's worker served it; `opens demo --serve` keeps "
                f"it up). To browse these numbers now: OPENS_DATA_DIR={run.dir} "
                f"OPENS_QUERY_PORT={run.settings.query_port} opens dashboard",
                soft_wrap=True,
            )
    finally:
        # A second Ctrl-C must not cut the clean-up short (each stop has its own time limit).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with err_console.status("stopping what the demo started…"):
            run.close()
