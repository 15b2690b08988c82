"""docker-compose.yml cannot run here (no Docker engine), so it is validated statically."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.settings import ENV_PREFIX, Settings

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
PINNED = re.compile(r"^[\w./-]+:(?!latest$)[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_services_present_with_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "clickhouse", "aws", "worker"):
        assert name in services, name
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue
        assert PINNED.match(svc["image"]), f"{name}: image {svc['image']!r} is not pinned"


def test_opens_variables_exist_in_settings(compose: dict[str, Any]) -> None:
    known = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    seen = set()
    for name, svc in compose["services"].items():
        for key in _env(svc):
            if key.startswith(ENV_PREFIX):
                seen.add(key)
                assert key in known, f"{name} sets {key}, which no setting reads"
    assert {"OPENS_KAFKA_BROKERS", "OPENS_CLICKHOUSE_URL"} <= seen


def test_settings_accept_the_compose_values(compose: dict[str, Any]) -> None:
    env = {
        k.removeprefix(ENV_PREFIX).lower(): re.sub(r"\$\{[^}]*:-([^}]*)\}", r"\1", v)
        for k, v in _env(compose["services"]["worker"]).items()
        if k.startswith(ENV_PREFIX)
    }
    settings = Settings(**env)
    assert settings.clickhouse_dsn.startswith("http://")
    assert settings.web_host == "0.0.0.0"


def test_mounted_and_built_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            ctx = svc["build"] if isinstance(svc["build"], str) else svc["build"]["context"]
            dockerfile = "Dockerfile"
            if isinstance(svc["build"], dict):
                dockerfile = svc["build"].get("dockerfile", dockerfile)
            assert (REPO / ctx / dockerfile).is_file(), f"{name}: no {dockerfile} in {ctx}"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared {source}"


def test_worker_scales(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    assert not worker.get("ports"), "a fixed host port prevents --scale"
    deps = worker["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["schema"]["condition"] == "service_completed_successfully"
