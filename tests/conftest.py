"""Session fixtures: the real local stack (Kafka broker, moto server) and chDB, in temp dirs.

Integration tests never skip: if the stack cannot start, the fixture raises and they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processor.analytics.query_backends import ChdbReaders
from processor.analytics.query_policy import ReaderLimits
from processor.analytics.query_server import serve
from processor.analytics.web_guard import Guard
from processor.devstack.chdb_server import ChdbServer
from processor.devstack.process import free_port
from processor.devstack.stack import LocalStack
from processor.devstack.worker_process import WorkerProcess
from processor.settings import Settings, load_settings
from processor.sinks.clickhouse.schema import apply_migrations
from tests.factories import generate, write

REPO = Path(__file__).resolve().parents[1]

__all__ = ["free_port", "query_chdb_in_subprocess", "unique"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def stack_settings(data_dir: Path, **extra: Any) -> Settings:
    """Settings for a private stack: its own data dir and free ports, the repo's jar cache."""
    return load_settings(
        data_dir=data_dir,
        cache_dir=REPO / ".cache",
        stack_kafka_port=free_port(),
        stack_controller_port=free_port(),
        stack_moto_port=free_port(),
        **extra,
    )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENS_* from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("OPENS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    s = stack_settings(tmp_path_factory.mktemp("stack"))
    local = LocalStack(s)
    try:
        local.up()
    except Exception:
        local.down()
        raise
    saved = {k: os.environ.get(k) for k in local.env()}
    os.environ.update({k: v for k, v in local.env().items() if k != "OPENS_DATA_DIR"})
    yield local
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    local.down()


@pytest.fixture(scope="session")
def chdb_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One embedded ClickHouse per test session (chDB allows one data directory per process)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path_factory.mktemp('chdb')}")
    yield client
    client.close()


@pytest.fixture
def ch_database(chdb_client: Any) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    chdb_client.command(f"CREATE DATABASE {name}")
    yield name
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")


def query_chdb_in_subprocess(path: Path, sql: str) -> list[list[Any]]:
    """Read a chDB directory from a fresh process (this one may hold another directory)."""
    script = (
        "import json,sys,clickhouse_connect\n"
        "c=clickhouse_connect.get_client(dsn='chdb://'+sys.argv[1])\n"
        "print(json.dumps([list(r) for r in c.query(sys.argv[2]).result_rows], default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows: list[list[Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return rows


@pytest.fixture
def endpoint(chdb_client: Any, ch_database: str) -> Iterator[str]:
    apply_migrations(chdb_client, ch_database)
    write(chdb_client, ch_database, generate(random.Random(8), 50, ["alpha", "beta"]))
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(
            serve(
                ChdbReaders(chdb_client.path, ch_database, ReaderLimits()), Guard("127.0.0.1"), port
            )
        )
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def chdb_server(tmp_path: Path) -> Iterator[ChdbServer]:
    srv = ChdbServer(tmp_path / "chdb-home", tmp_path / "chdb-data", "127.0.0.1", free_port())
    srv.start()
    try:
        srv.wait_healthy(60)
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def worker_proc() -> Iterator[list[WorkerProcess]]:
    """Workers a test starts; each is stopped (SIGTERM, then SIGKILL) by PID at the end."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()
