"""Grafana's provisioning and the "Email opens" dashboard: every reference resolves, and every
ClickHouse query in the dashboard runs on the real engine (chDB) over the real schema, returns
the columns its panel uses, and gives the generator's truth."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processor.sinks.clickhouse.schema import apply_migrations
from tests.deploy.common import (
    DEPLOY,
    PROMETHEUS_BUILTINS,
    REPO,
    compose,
    exported_metrics,
    load_yaml,
    mounts,
    promql_metrics,
)
from tests.factories import BASE_MS, generate, truth, write

CLICKHOUSE = "grafana-clickhouse-datasource"
DASHBOARD = DEPLOY / "grafana/dashboards/email-opens.json"
CAMPAIGNS = ["alpha", "beta", "gamma"]
# Covers every generated hit (BASE_MS - 3 d … + 1 d).
FROM = datetime.fromtimestamp(BASE_MS / 1000, UTC) - timedelta(days=4)
TO = datetime.fromtimestamp(BASE_MS / 1000, UTC) + timedelta(days=2)

# The columns each ClickHouse panel reads (names used by units, overrides and axes).
EXPECTED = {
    "Totals": [
        "sends",
        "opens",
        "unique_opens",
        "human_unique_opens",
        "open_rate",
        "human_open_rate",
        "machine_open_share",
    ],
    "Campaign summary": [
        "campaign",
        "category",
        "sends",
        "opens",
        "unique_opens",
        "human_unique_opens",
        "machine_opens",
        "invalid_hits",
        "open_rate",
        "human_open_rate",
        "machine_open_share",
        "first_open_at",
        "last_open_at",
    ],
    "Opens over time": ["time", "opens", "unique_opens", "machine_opens"],
    "Machine-open share": ["time", "machine_open_share"],
    "Email clients": ["email_client", "opens", "unique_opens", "machine_opens"],
    "Devices": ["device_type", "opens"],
    "Countries": ["country_code", "opens", "unique_opens"],
    "Hour of day (UTC)": ["hour_utc", "opens"],
    "Freshness": ["source", "last_event_at", "last_ingested_at", "lag_seconds"],
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    doc = load_yaml(DEPLOY / "grafana/provisioning/datasources/opens.yaml")
    assert doc["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert len(by_uid) == len(doc["datasources"]), "duplicate data source uid"
    return by_uid


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep their panels inside
    return [p for p in out if p["type"] != "row"]


def clickhouse_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(title, SQL, format) of every ClickHouse query: panel targets and template variables."""
    out = []
    for p in panels(dashboard):
        for t in p["targets"]:
            if t["datasource"]["type"] == CLICKHOUSE:
                out.append((p["title"], t["rawSql"], t["format"]))
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query" and v["datasource"]["type"] == CLICKHOUSE:
            out.append((f"${v['name']}", v["query"], None))
    return out


def render(sql: str, db: str, selected: list[str] | None) -> str:
    """What the ClickHouse plugin sends: Grafana variables and the plugin's macros expanded.
    ``selected=None`` is "All" (the variable's custom all value)."""
    values = "'__all__'" if selected is None else ",".join(f"'{c}'" for c in selected)
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    sql = sql.replace("${db}", db).replace("${campaign:singlequote}", values)
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)",
        r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)",
        sql,
    )
    assert "$" not in sql, f"a Grafana variable or macro this test does not expand: {sql}"
    return sql


@pytest.fixture(scope="module")
def loaded(chdb_client: Any) -> Iterator[tuple[Any, str, dict[str, dict[str, Any]]]]:
    # One loaded database for the module: the queries only read it.
    ch_database = "t_grafana_" + uuid.uuid4().hex[:8]
    apply_migrations(chdb_client, ch_database)
    hits = generate(random.Random(11), 400, CAMPAIGNS)
    write(chdb_client, ch_database, hits, hits[:100])  # a replay changes nothing
    chdb_client.insert(
        "sends",
        [
            [c, "news", datetime(2025, 11, 20, tzinfo=UTC), 1000 * (i + 1)]
            for i, c in enumerate(CAMPAIGNS)
        ],
        column_names=["campaign", "category", "sent_at", "sends"],
        database=ch_database,
    )
    yield chdb_client, ch_database, truth(hits)
    chdb_client.command(f"DROP DATABASE IF EXISTS {ch_database}")


def run(client: Any, sql: str) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    result = client.query(sql)
    types = [t.name for t in result.column_types]
    return list(result.column_names), types, [tuple(r) for r in result.result_rows]


# --- provisioning --------------------------------------------------------------------------


@pytest.mark.unit
def test_data_sources_point_at_compose_services(datasources: dict[str, dict[str, Any]]) -> None:
    services = compose()["services"]
    (ch,) = [d for d in datasources.values() if d["type"] == CLICKHOUSE]
    assert ch["jsonData"]["host"] in services
    assert ch["jsonData"]["protocol"] == "http" and ch["jsonData"]["port"] == 8123
    (prom,) = [d for d in datasources.values() if d["type"] == "prometheus"]
    assert re.fullmatch(r"http://prometheus:9090", prom["url"])
    assert "prometheus" in services
    plugin = services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert re.fullmatch(rf"{CLICKHOUSE}@\d+\.\d+\.\d+", plugin), "the plugin is pinned"


@pytest.mark.unit
def test_dashboard_provider_reads_the_mounted_folder() -> None:
    grafana = compose()["services"]["grafana"]
    bind = mounts(grafana)
    provisioning = REPO / bind["/etc/grafana/provisioning"]
    doc = load_yaml(provisioning / "dashboards/opens.yaml")
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    folder = bind[provider["options"]["path"]]
    assert (REPO / folder / DASHBOARD.name).samefile(DASHBOARD)
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


@pytest.mark.unit
def test_dashboard_references_resolve(
    dashboard: dict[str, Any], datasources: dict[str, dict[str, Any]]
) -> None:
    assert dashboard["uid"] == "email-opens" and dashboard["title"] == "Email opens"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel id"
    for p in panels(dashboard):
        assert p["targets"], p["title"]
        for ref in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
            assert ref["uid"] in datasources, f"{p['title']}: unknown data source {ref}"
            assert datasources[ref["uid"]]["type"] == ref["type"], p["title"]
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p["targets"]:
            if t["datasource"]["type"] == CLICKHOUSE:
                assert t["editorType"] == "sql"
                # 0 = time series, 1 = table (the plugin's Format enum).
                assert t["format"] == (0 if p["type"] == "timeseries" else 1), p["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    (ch,) = [d for d in datasources.values() if d["type"] == CLICKHOUSE]
    assert variables["db"]["query"] == ch["jsonData"]["defaultDatabase"]
    assert variables["campaign"]["datasource"]["uid"] == ch["uid"]
    assert {p["title"] for p in panels(dashboard)} >= set(EXPECTED)


@pytest.mark.unit
def test_prometheus_panels_name_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_metrics()
    seen = set()
    for p in panels(dashboard):
        for t in p["targets"]:
            if t["datasource"]["type"] == "prometheus":
                expr = t["expr"].replace("$__rate_interval", "1m")
                for name in promql_metrics(expr):
                    assert name in exported or name in PROMETHEUS_BUILTINS, f"{p['title']}: {name}"
                    seen.add(name)
    assert {"opens_kinesis_millis_behind_latest", "opens_sink_failures_total"} <= seen


# --- every query on the real engine ---------------------------------------------------------


@pytest.mark.integration
def test_every_clickhouse_query_runs_and_returns_its_columns(
    dashboard: dict[str, Any], loaded: tuple[Any, str, dict[str, dict[str, Any]]]
) -> None:
    client, db, _ = loaded
    by_title = {p["title"]: p for p in panels(dashboard)}
    queries = clickhouse_queries(dashboard)
    assert {title for title, _, _ in queries} >= set(EXPECTED)
    for title, sql, fmt in queries:
        for selected in (None, ["beta"], ["alpha", "gamma"]):
            names, types, rows = run(client, render(sql, db, selected))
            assert rows, f"{title} ({selected}): no rows"
            if title.startswith("$"):
                continue
            assert names == EXPECTED[title], title
            if fmt == 0:
                assert types[0].startswith("DateTime"), f"{title}: time column is {types[0]}"
                assert [r[0] for r in rows] == sorted(r[0] for r in rows), title
            panel = by_title[title]
            used = [o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]]
            used += [panel["options"]["xField"]] if "xField" in panel["options"] else []
            assert set(used) <= set(names), f"{title}: panel settings name missing columns"


@pytest.mark.integration
def test_dashboard_numbers_are_the_truth(
    dashboard: dict[str, Any], loaded: tuple[Any, str, dict[str, dict[str, Any]]]
) -> None:
    client, db, expected = loaded
    sends = {c: 1000 * (i + 1) for i, c in enumerate(CAMPAIGNS)}
    sql = {title: s for title, s, _ in clickhouse_queries(dashboard)}

    def one(title: str, selected: list[str] | None) -> dict[str, Any]:
        names, _, rows = run(client, render(sql[title], db, selected))
        assert len(rows) == 1, title
        return dict(zip(names, rows[0], strict=True))

    def total(title: str, column: str, selected: list[str] | None) -> int:
        names, _, rows = run(client, render(sql[title], db, selected))
        return sum(int(r[names.index(column)]) for r in rows)

    for selected in (None, ["beta"], ["alpha", "gamma"]):
        chosen = CAMPAIGNS if selected is None else selected
        opens = sum(expected[c]["opens"] for c in chosen)
        unique = sum(expected[c]["unique_opens"] for c in chosen)
        machine = sum(expected[c]["machine_opens"] for c in chosen)
        totals = one("Totals", selected)
        assert totals["opens"] == opens
        assert totals["unique_opens"] == unique
        assert totals["human_unique_opens"] == sum(
            expected[c]["human_unique_opens"] for c in chosen
        )
        assert totals["sends"] == sum(sends[c] for c in chosen)
        assert totals["open_rate"] == pytest.approx(unique / totals["sends"])
        assert totals["machine_open_share"] == pytest.approx(machine / opens)
        # Every breakdown adds up to the same opens; time series cover the whole range.
        for title in ("Opens over time", "Email clients", "Devices", "Countries"):
            assert total(title, "opens", selected) == opens, (title, selected)
        assert total("Hour of day (UTC)", "opens", selected) == opens
        assert total("Opens over time", "unique_opens", selected) == unique
        assert total("Email clients", "unique_opens", selected) == unique
        assert total("Countries", "unique_opens", selected) == unique
        _, _, rows = run(client, render(sql["Campaign summary"], db, selected))
        assert sorted(r[0] for r in rows) == sorted(chosen)


# --- the Grafana-managed freshness alert ----------------------------------------------------


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(DEPLOY / "grafana/provisioning/alerting/opens.yaml")
    assert doc["apiVersion"] == 1
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.mark.unit
def test_alert_rules_are_consistent(
    alert_rules: list[dict[str, Any]], datasources: dict[str, dict[str, Any]]
) -> None:
    assert alert_rules
    for rule in alert_rules:
        refs = {d["refId"]: d for d in rule["data"]}
        assert rule["condition"] in refs, rule["title"]
        for d in rule["data"]:
            assert d["datasourceUid"] in datasources or d["datasourceUid"] == "__expr__"
            if d["datasourceUid"] == "__expr__":
                assert d["model"]["expression"] in refs, rule["title"]
        assert rule["labels"]["severity"] in ("warning", "critical")


@pytest.mark.integration
def test_alert_queries_run(
    alert_rules: list[dict[str, Any]], loaded: tuple[Any, str, dict[str, dict[str, Any]]]
) -> None:
    client, db, _ = loaded
    for rule in alert_rules:
        for d in rule["data"]:
            if d["datasourceUid"] == "__expr__":
                continue
            # Alert rules cannot use dashboard variables: the database is written out.
            sql = re.sub(r"\bopens\.(\w+)", rf"{db}.\1", d["model"]["rawSql"])
            names, types, rows = run(client, sql)
            assert rows, rule["title"]
            numeric = [
                n
                for n, t in zip(names, types, strict=True)
                if t.startswith(("Float", "Int", "UInt"))
            ]
            assert len(numeric) == 1, f"{rule['title']}: one value per row, the rest labels"
            labels = {t for n, t in zip(names, types, strict=True) if n not in numeric}
            assert labels <= {"String", "LowCardinality(String)"}, rule["title"]
