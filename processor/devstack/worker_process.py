"""Run `opens worker` as a child process and watch it through its web endpoints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from processor.errors import StackError

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value} (labels kept verbatim)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group("name") + (m.group("labels") or "")] = float(m.group("value"))
    return out


class WorkerProcess:
    """`opens worker` in a child process; ``stop()`` sends SIGTERM (graceful) and waits."""

    def __init__(self, env: Mapping[str, str], web_url: str, log_file: Path) -> None:
        self.env = dict(env)
        self.web_url = web_url
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processor", "worker"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def metrics(self) -> dict[str, float]:
        try:
            url = f"{self.web_url}/metrics"  # http on loopback, built from settings
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                return parse_metrics(resp.read().decode())
        except OSError:
            return {}

    def wait_for(self, metric: str, at_least: float, timeout: float) -> float:
        """Poll /metrics until ``metric`` reaches ``at_least``; fail clearly if the worker dies."""
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                msg = f"the worker exited with status {self.proc.returncode}"
                raise StackError(
                    msg,
                    component="worker",
                    hint=f"see {self.log_file}",
                )
            value = self.metrics().get(metric, 0.0)
            if value >= at_least:
                return value
            time.sleep(0.25)
        msg = f"{metric} reached {value:g}, not {at_least:g}, within {timeout:.0f}s"
        raise StackError(
            msg,
            component="worker",
            hint=f"see {self.log_file}",
        )

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
