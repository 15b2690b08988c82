"""A private moto server for the infra tests, and per-test resource names.

Its own server rather than the session ``stack``: these tests need moto only (no Kafka), and a
fresh server is what the issue's "against a fresh moto server" asks for. Names are unique per
test anyway, so tests never see each other's resources.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.aws import Clients, make_clients
from infra.resources.base import Env
from infra.runner import build_env
from infra.settings import InfraSettings, load_infra_settings
from processor.devstack.moto import MotoServer
from processor.errors import StackError
from processor.settings import Settings, load_settings
from tests.conftest import free_port, unique


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh moto server on a free port; a failed start is retried, never leaked.

    ``ManagedProcess.pid()`` can be None for a moment right after ``start()`` (seen: the
    first /proc check after Popen misses the marker), which ``wait_healthy`` reports as
    "exited during start-up"; so wait for the PID to be visible first, and if the start
    still fails, end the process we started, by its PID.
    """
    for attempt in range(3):
        server = MotoServer(
            home=tmp_path_factory.mktemp(f"moto{attempt}"), host="127.0.0.1", port=free_port()
        )
        pid = server.start()
        deadline = time.monotonic() + 5
        while server.process.pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            server.wait_healthy(60)
        except StackError:
            _end(pid)
            if attempt == 2:
                raise
            continue
        try:
            yield server.endpoint
        finally:
            if not server.stop():
                _end(pid)
        return


def _end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """boto3's own variables point at moto, as ``eval "$(opens stack env)"`` would."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_endpoint


def name_overrides() -> dict[str, object]:
    """OPENS_INFRA_* values unique to one test, and fast polling."""
    return {
        "stack": unique("t"),
        "pixel_bucket": unique("pixel"),
        "log_bucket": unique("logs"),
        "role_name": unique("role"),
        "realtime_log_config": unique("rtlog"),
        "origin_access_control": unique("oac"),
        "poll_interval": 0.01,
        "deploy_timeout": 20.0,
    }


@pytest.fixture
def infra_settings() -> InfraSettings:
    return load_infra_settings(**name_overrides())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", kinesis_stream=unique("hits"))


@pytest.fixture
def clients(aws: str) -> Clients:
    return make_clients("us-east-1")


MakeEnv = Callable[..., Env]


@pytest.fixture
def make_env(settings: Settings, infra_settings: InfraSettings, aws: str) -> MakeEnv:
    """A fresh run context, as each CLI invocation builds one."""

    def make(*, allow_missing_apis: bool = True, infra: InfraSettings | None = None) -> Env:
        return build_env(settings, infra or infra_settings, allow_missing_apis=allow_missing_apis)

    return make
