"""kinesis-local (kinesis-mock as one Node script): a Kinesis emulator that reshards faithfully.

moto keeps writing to a split parent and never ends a closed shard; kinesis-mock closes the
parent, returns ``NextShardIterator=None`` with ``ChildShards`` and routes new writes to the
children. The npm package is fetched once into ``<cache_dir>/kinesis-local/`` (git-ignored) and
run from its own folder, because it reads its TLS certificate ``server.json`` from the cwd.
It binds every interface; we only ever talk to it on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from processor.devstack.process import ManagedProcess, free_port, port_is_free
from processor.errors import StackError

COMPONENT = "kinesis-local"
PACKAGE = "kinesis-local"
VERSION = "0.6.2"
HOST = "127.0.0.1"
# Resharding and stream creation take 500 ms each by default; tests want them quick.
FAST = {
    name: "100ms"
    for name in (
        "CREATE_STREAM_DURATION",
        "DELETE_STREAM_DURATION",
        "MERGE_SHARDS_DURATION",
        "SPLIT_SHARD_DURATION",
        "UPDATE_SHARD_COUNT_DURATION",
    )
}


def _tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found; it {purpose} the kinesis-local emulator"
        raise StackError(msg, component=COMPONENT, hint="install Node.js 18+ with npm")
    return path


def ensure_package(cache_dir: Path, version: str = VERSION) -> Path:
    """The package folder (holding ``main.js``), installed with npm once, offline afterwards."""
    prefix = (cache_dir / COMPONENT).resolve()
    home = prefix / "node_modules" / PACKAGE
    if (home / "main.js").exists() and (home / "server.json").exists():
        return home
    npm = _tool("npm", "installs")
    staging = prefix.with_name(f"{COMPONENT}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund"]
    try:
        proc = subprocess.run(
            [*argv, f"{PACKAGE}@{version}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        out = proc.stdout + proc.stderr
        ok = proc.returncode == 0 and (staging / "node_modules" / PACKAGE / "main.js").exists()
    except subprocess.TimeoutExpired:
        out, ok = "timed out after 300s", False
    if not ok:
        shutil.rmtree(staging, ignore_errors=True)
        tail = " | ".join(out.strip().splitlines()[-3:])
        msg = f"npm could not install {PACKAGE}@{version}: {tail or 'no output'}"
        raise StackError(msg, component=COMPONENT, hint="check that the npm registry is reachable")
    # Atomic: a half-installed folder is never mistaken for a cache hit.
    shutil.rmtree(prefix, ignore_errors=True)
    try:
        staging.rename(prefix)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
        if not (home / "main.js").exists():
            raise
    return home


@dataclass(frozen=True)
class KinesisLocal:
    """One emulator on ``port`` (plain HTTP) and ``tls_port``; state files live in ``home``."""

    home: Path
    cache_dir: Path
    port: int
    tls_port: int

    @classmethod
    def on_free_ports(cls, home: Path, cache_dir: Path) -> KinesisLocal:
        port = free_port(HOST)
        tls_port = free_port(HOST)
        while tls_port == port:
            tls_port = free_port(HOST)
        return cls(home, cache_dir, port, tls_port)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def process(self) -> ManagedProcess:
        marker = f"--opens-kinesis-local-port={self.port}"
        return ManagedProcess(COMPONENT, self.home / "kinesis-local.pid", marker=marker)

    @property
    def log(self) -> Path:
        return self.home / "kinesis-local.log"

    def client(self) -> Any:
        """A boto3 Kinesis client for this emulator (dummy credentials, us-east-1)."""
        return boto3.client(
            "kinesis",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - the emulator ignores credentials
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
        )

    def start(self, timeout: float = 30.0) -> int:
        """Install if needed, start, and wait until ``ListStreams`` answers."""
        if (pid := self.process.pid()) is not None:
            return pid
        package = ensure_package(self.cache_dir)
        for port in (self.port, self.tls_port):
            if not port_is_free(HOST, port):
                msg = f"port {port} on {HOST} is already in use"
                raise StackError(msg, component=COMPONENT, hint="pick other ports")
        env = {
            **os.environ,
            **FAST,
            "KINESIS_MOCK_PLAIN_PORT": str(self.port),
            "KINESIS_MOCK_TLS_PORT": str(self.tls_port),
            "AWS_REGION": "us-east-1",
            "LOG_LEVEL": "WARN",
        }
        # The trailing argument is ignored by the script; it marks the process as ours.
        argv = [_tool("node", "runs"), str(package / "main.js"), self.process.marker]
        pid = self.process.start(argv, log=self.log, env=env, cwd=package)
        self.wait_ready(timeout)
        return pid

    def ready(self) -> bool:
        try:
            self.client().list_streams()
        except (BotoCoreError, ClientError):  # not listening yet, or still booting
            return False
        return True

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited_early():
                msg = "kinesis-local exited during start-up"
                raise StackError(msg, component=COMPONENT, hint=f"see {self.log}")
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        msg = f"kinesis-local did not answer within {timeout:.0f}s"
        raise StackError(msg, component=COMPONENT, hint=f"see {self.log}")

    def stop(self) -> bool:
        return self.process.stop(timeout=10)
