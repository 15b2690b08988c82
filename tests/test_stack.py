"""`opens stack up|status|down` on a private stack of its own, through the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from processor.devstack.kafka import metadata_ok
from processor.devstack.stack import LocalStack
from processor.settings import load_settings
from tests.conftest import REPO, free_port, stack_settings

pytestmark = pytest.mark.integration


def opens(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "stack", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
        cwd=REPO,
    )


def test_up_twice_status_down(tmp_path: Path) -> None:
    s = stack_settings(tmp_path)
    env = {
        "OPENS_DATA_DIR": str(tmp_path),
        "OPENS_CACHE_DIR": str(s.cache_dir),
        "OPENS_STACK_KAFKA_PORT": str(s.stack_kafka_port),
        "OPENS_STACK_CONTROLLER_PORT": str(s.stack_controller_port),
        "OPENS_STACK_MOTO_PORT": str(s.stack_moto_port),
    }
    local = LocalStack(s)
    try:
        first = opens(env, "up")
        assert first.returncode == 0, first.stderr
        pids = (local.kafka.process.pid(), local.moto.process.pid())
        assert None not in pids
        assert metadata_ok(local.kafka.bootstrap)[0]

        again = opens(env, "up")  # harmless: same processes
        assert again.returncode == 0, again.stderr
        assert (local.kafka.process.pid(), local.moto.process.pid()) == pids

        status = opens(env, "status")
        assert status.returncode == 0
        for pid in pids:
            assert str(pid) in status.stdout
        assert status.stdout.count("healthy") == 2

        down = opens(env, "down")
        assert down.returncode == 0, down.stderr
        for pid in pids:
            assert pid is not None
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
            )
        after = opens(env, "status")
        assert after.returncode == 3
        assert after.stdout.count("stopped") == 2
    finally:
        local.down()


def _stack_for(env: dict[str, str]) -> LocalStack:
    return LocalStack(
        load_settings(
            data_dir=Path(env["OPENS_DATA_DIR"]),
            stack_moto_port=int(env["OPENS_STACK_MOTO_PORT"]),
            stack_kafka_port=int(env["OPENS_STACK_KAFKA_PORT"]),
            stack_controller_port=int(env["OPENS_STACK_CONTROLLER_PORT"]),
        )
    )


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            "OPENS_DATA_DIR": str(tmp_path),
            "OPENS_STACK_MOTO_PORT": str(port),
            "OPENS_STACK_KAFKA_PORT": str(free_port()),
            "OPENS_STACK_CONTROLLER_PORT": str(free_port()),
        }
        out = opens(env, "up")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert f"port {port}" in lines[0]
    assert _stack_for(env).moto.process.pid() is None
    assert not (tmp_path / "stack" / "moto" / "moto.pid").exists()


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "OPENS_DATA_DIR": str(tmp_path),
        "OPENS_STACK_MOTO_PORT": str(free_port()),
        "OPENS_STACK_KAFKA_PORT": str(free_port()),
        "OPENS_STACK_CONTROLLER_PORT": str(free_port()),
        "PATH": str(Path(sys.executable).parent),  # python, but no java on PATH
    }
    out = opens(env, "up")
    assert out.returncode == 1
    assert "Java not found" in out.stderr
    assert "Traceback" not in out.stderr
    # moto was started by this `up` before Kafka failed: it is stopped again.
    assert _stack_for(env).moto.process.pid() is None
    assert not (tmp_path / "stack" / "moto" / "moto.pid").exists()
    assert (tmp_path / "stack" / "moto" / "moto.log").exists()  # it had been started
