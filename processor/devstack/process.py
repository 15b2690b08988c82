"""Start, find and stop one detached background process by its PID file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from processor.errors import StackError


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on ``host`` now (for private stacks, tests and drills)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass(frozen=True)
class ManagedProcess:
    """A background process owned by the stack, identified by ``pid_file``.

    ``marker`` is a string that must appear in the process's command line: a PID recycled by
    the OS for some other program is never signalled.
    """

    name: str
    pid_file: Path
    marker: str

    def pid(self) -> int | None:
        """The PID if the process we started is still running, else ``None``."""
        try:
            pid = int(json.loads(self.pid_file.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        cmd = _cmdline(pid)
        return pid if cmd and self.marker in cmd else None

    def start(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,  # survives the CLI; Ctrl-C in the shell doesn't hit it
                )
            except OSError as exc:
                msg = f"could not start {self.name}: {exc}"
                raise StackError(msg, component=self.name) from None
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "argv": list(argv)}))
        # Between fork and exec the child still shows our command line: wait until it carries
        # the marker, so `pid()` (and `exited_early()`) never mistake a starting process for a
        # dead one.
        deadline = time.monotonic() + 10
        while self.marker not in _cmdline(proc.pid) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        return proc.pid

    def exited_early(self) -> bool:
        """True when the PID file exists but its process is gone (it crashed on start)."""
        return self.pid_file.exists() and self.pid() is None

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns whether a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            _signal(pid, signal.SIGKILL)
            while self.pid() is not None:
                _reap(pid)
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL at once (the crash case: no shutdown hook runs). Returns whether a process
        was killed."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, signal.SIGKILL)
        while self.pid() is not None:
            _reap(pid)
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (tests start the stack
    in-process); a zombie keeps no command line, so ``pid()`` already treats it as gone."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
