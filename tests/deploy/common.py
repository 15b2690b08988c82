"""Shared helpers for the static checks of the operator files (no Docker engine runs here)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from processor.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# name:tag with a digit in the tag (not `latest`), optionally @sha256 — a version, not a channel.
PINNED = re.compile(r"^[\w./-]+:(?!latest$)[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?$")
# Metrics every Prometheus has for its own scrapes, not exported by the worker.
PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data = load_yaml(REPO / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def with_defaults(value: str) -> str:
    """What compose makes of ``${VAR:-default}`` when VAR is not set."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


def service_env(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment; ``None`` = passed through from the shell only when set there."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: v for k, _, v in (item.partition("=") for item in env)}
    return {str(k): None if v is None else str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: container path → host path (relative to the repository)."""
    out = {}
    for vol in service.get("volumes", []):
        source, target = vol.split(":")[:2]
        if source.startswith((".", "/")):
            out[target] = source
    return out


@cache
def exported_metrics() -> dict[str, str]:
    """Every series name the worker's /metrics can show, mapped to its metric type."""
    names: dict[str, str] = {}
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    for family in Metrics().registry.collect():
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = family.type
    return names


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects; raises ValueError if it does not parse."""
    found: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found
