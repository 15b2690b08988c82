"""The shipped Prometheus scrape config and alert rules, checked against the worker's metrics."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import promql_parser
import pytest

from tests.deploy.common import (
    DEPLOY,
    PROMETHEUS_BUILTINS,
    REPO,
    compose,
    exported_metrics,
    load_yaml,
    mounts,
    promql_metrics,
    service_env,
)

pytestmark = pytest.mark.unit


# Metrics the alert rules may name before processor/metrics.py exports them (landing from another
# branch). Each is accepted while absent; once exported it must have the type given here.
@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    doc = load_yaml(DEPLOY / "prometheus/alerts.yml")
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"], group.get("name")
        out.extend(group["rules"])
    return out


def test_metric_helpers_see_through_expressions() -> None:
    assert promql_metrics('sum by (x) (rate(a_total{y=~"b.*"}[5m])) / on() b > 1') == {
        "a_total",
        "b",
    }
    with pytest.raises(ValueError, match="parenthesis"):
        promql_metrics("rate(a_total[5m]")
    assert exported_metrics()["opens_records_total"] == "counter"
    assert exported_metrics()["opens_sink_batch_seconds_bucket"] == "histogram"


def test_rules_are_well_formed(rules: list[dict[str, Any]]) -> None:
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"Opens[A-Z]\w+", rule["alert"]), rule["alert"]
        promql_parser.parse_duration(rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]


def test_rules_name_only_exported_metrics(rules: list[dict[str, Any]]) -> None:
    exported = exported_metrics()
    for rule in rules:
        for name in promql_metrics(rule["expr"]):
            if name in PROMETHEUS_BUILTINS:
                continue
            assert name in exported, f"{rule['alert']}: no metric {name} in processor/metrics.py"


def test_rules_cover_the_runbook_signals(rules: list[dict[str, Any]]) -> None:
    named = set().union(*(promql_metrics(r["expr"]) for r in rules))
    for metric in (
        "up",
        "opens_kinesis_millis_behind_latest",
        "opens_records_total",  # dead letters: outcome bad:<reason>
        "opens_sink_failures_total",
        "opens_kinesis_checkpoint_age_seconds",
    ):
        assert metric in named, f"no alert on {metric}"
    dead = [r for r in rules if 'outcome=~"bad:.*"' in r["expr"]]
    assert dead, "no alert on dead letters"


def test_scrape_config_finds_every_worker_and_loads_the_rules() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_path = mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    config = load_yaml(REPO / config_path)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "opens-worker"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and "worker" in services
    assert sd["type"] == "A"
    assert str(sd["port"]) == service_env(services["worker"])["OPENS_WEB_PORT"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    mounted_rules = [t for t in mounts(prometheus) if t.startswith("/etc/prometheus/rules/")]
    assert mounted_rules
    for target in mounted_rules:
        assert any(fnmatch.fnmatch(target, g) for g in config["rule_files"]), target
    # The job name is what the rules and the dashboard select on.
    text = (DEPLOY / "prometheus/alerts.yml").read_text()
    assert f'job="{job["job_name"]}"' in text
