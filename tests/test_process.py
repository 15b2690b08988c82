from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processor.devstack.process import ManagedProcess, port_is_free

pytestmark = pytest.mark.unit


def test_start_find_stop(tmp_path: Path) -> None:
    marker = f"sleep-marker-{tmp_path.name}"
    mp = ManagedProcess("sleeper", tmp_path / "p.pid", marker=marker)
    pid = mp.start(
        [sys.executable, "-c", "import time,sys; time.sleep(60)", marker], log=tmp_path / "log"
    )
    assert mp.pid() == pid
    assert mp.stop(timeout=5) is True
    assert mp.pid() is None
    assert not (tmp_path / "p.pid").exists()
    assert mp.stop() is False  # nothing left to stop


def test_never_signals_a_recycled_pid(tmp_path: Path) -> None:
    """A PID file pointing at a process without our marker is treated as stale."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = tmp_path / "p.pid"
        pid_file.write_text(json.dumps({"pid": other.pid}))
        mp = ManagedProcess("x", pid_file, marker="some-marker-not-in-its-cmdline")
        assert mp.pid() is None
        assert mp.stop() is False
        time.sleep(0.1)
        assert other.poll() is None, "a process that is not ours was signalled"
    finally:
        other.kill()
        other.wait()


def test_garbage_pid_file_is_not_running(tmp_path: Path) -> None:
    (tmp_path / "p.pid").write_text("not json")
    assert ManagedProcess("x", tmp_path / "p.pid", marker="m").pid() is None


def test_port_is_free_detects_listener() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert port_is_free("127.0.0.1", s.getsockname()[1]) is False
