from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from processor.analytics.forget import forget_subscriber
from processor.sinks.clickhouse.schema import (
    apply_hits_ttl,
    apply_migrations,
    load_migrations,
    render_cluster,
)
from tests.factories import OLD_COLUMNS, check, generate, summary, write


@pytest.mark.unit
def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


@pytest.mark.unit
def test_cluster_variant_replicates_and_distributes_every_table() -> None:
    sql = render_cluster("opens", "prod")
    tables = (
        "hits",
        "first_opens",
        "opens_by_minute",
        "sends",
        "pipeline_state",
        "forgotten_subscribers",
        "opener_state",
        "day_changes",
        "sealed_counts",
    )
    for t in tables:
        local = next(
            s for s in sql if s.startswith(f"CREATE TABLE IF NOT EXISTS `opens`.{t}_local")
        )
        assert "ON CLUSTER `prod`" in local
        assert "ENGINE = Replicated" in local
        assert f"'/clickhouse/tables/{{shard}}/opens/{t}_local', '{{replica}}'" in local
        dist = next(s for s in sql if s.startswith(f"CREATE TABLE IF NOT EXISTS `opens`.{t} "))
        assert f"ENGINE = Distributed(`prod`, `opens`, {t}_local" in dist
    mvs = [s for s in sql if "MATERIALIZED VIEW" in s]
    old_ingest = next(s for s in mvs if "hits_ingest_mv " in s)  # 0010's, replaced in 0012
    mvs.remove(old_ingest)
    ingest = next(s for s in mvs if "hits_ingest_classified_mv" in s)
    mvs.remove(ingest)
    assert "FROM `opens`.hits_ingest_local" in old_ingest
    upgrade = next(s for s in mvs if "hits_ingest_next_mv" in s)
    mvs.remove(upgrade)
    assert all("FROM `opens`.hits_local" in s and "_local AS" in s for s in mvs)
    # Writers' rows go from each shard's Null ingest table into that shard's hits, filtered by
    # the whole suppression list (the Distributed table, not one shard's part of it).
    assert "TO `opens`.hits_local AS" in ingest
    assert "FROM `opens`.hits_ingest_local" in ingest
    assert "FROM `opens`.forgotten_subscribers GROUP BY" in " ".join(ingest.split())
    create = "CREATE TABLE IF NOT EXISTS `opens`."
    null = next(s for s in sql if s.startswith(create + "hits_ingest_local"))
    assert null.endswith("ENGINE = Null")
    dist = next(s for s in sql if s.startswith("CREATE TABLE IF NOT EXISTS `opens`.hits_ingest "))
    assert "hits_ingest_local, cityHash64(cid, sid))" in dist
    mvs += [old_ingest, ingest, upgrade]
    created = [s.split()[6].split(".")[1] for s in mvs]
    dropped = [s.split()[4].split(".")[1] for s in sql if s.startswith("DROP VIEW")]
    assert set(created) - set(dropped) == {
        "hits_ingest_classified_mv",
        "day_changes_mv",
        "pipeline_state_hits_mv",
        "opener_state_mv",
        "opener_state_probable_mv",
    }
    # Only the local storage is exchanged: each Distributed table keeps its local name.
    exchange = next(s for s in sql if s.startswith("EXCHANGE TABLES"))
    assert exchange.startswith("EXCHANGE TABLES `opens`.hits_local AND `opens`.hits_next_local")
    # A view is dropped only after its replacement writes to the same table.
    assert sql.index(next(s for s in sql if s.startswith("DROP VIEW"))) > sql.index(
        next(s for s in mvs if "first_opens_rows_mv" in s)
    )
    assert all("ON CLUSTER" in s for s in sql if not s.startswith("INSERT INTO"))
    with pytest.raises(ValueError, match="invalid cluster"):
        render_cluster("opens", "x; DROP")


@pytest.mark.integration
def test_upgrade_to_per_row_first_opens_keeps_every_number(
    chdb_client: Any, ch_database: str
) -> None:
    """A database filled under migration 8 (first opens grouped per insert) and then upgraded
    gives the truth over old rows, new rows and replays of old requests across the upgrade."""
    assert [m.version for m in apply_migrations(chdb_client, ch_database, upto=8)] == list(
        range(1, 9)
    )
    rnd = random.Random(8)
    before = generate(rnd, 300, ["upgrade", "other"])
    write(chdb_client, ch_database, before, table="hits")
    grouped = chdb_client.command(f"SELECT count() FROM {ch_database}.first_opens")
    upgraded = [m.version for m in apply_migrations(chdb_client, ch_database)]
    assert upgraded == [m.version for m in load_migrations() if m.version > 8]
    views = chdb_client.query(
        f"SELECT name FROM system.tables WHERE database = '{ch_database}' AND name LIKE '%_mv'"
    ).result_rows
    assert {v[0] for v in views} == {
        "hits_ingest_classified_mv",
        "day_changes_mv",
        "pipeline_state_hits_mv",
        "opener_state_mv",
        "opener_state_probable_mv",
    }
    assert grouped > 0
    after = generate(random.Random(9), 300, ["upgrade", "third"])
    after = [dataclasses.replace(h, request_id=f"new-{h.request_id}") for h in after]
    write(chdb_client, ch_database, after, before[::3])
    check(chdb_client, ch_database, before + after)
    chdb_client.command(f"OPTIMIZE TABLE {ch_database}.opener_state FINAL")
    chdb_client.command(f"OPTIMIZE TABLE {ch_database}.hits FINAL")
    check(chdb_client, ch_database, before + after)


@pytest.mark.integration
def test_upgrade_to_the_suppression_list_moves_no_number(
    chdb_client: Any, ch_database: str
) -> None:
    """A migration-9 database with data, upgraded: every view gives the same numbers, replays of
    old requests through the new ingest table change none, new hits count, and the list works
    on rows written before it existed."""
    assert [m.version for m in apply_migrations(chdb_client, ch_database, upto=9)] == list(
        range(1, 10)
    )
    before = generate(random.Random(10), 400, ["upgrade", "other"])
    write(chdb_client, ch_database, before, before[::4], table="hits")
    views = (
        "campaign_summary",
        "opens_timeline",
        "opens_by_hour_of_day",
        "opens_by_client",
        "opens_by_country",
    )

    def numbers() -> dict[str, list[tuple[Any, ...]]]:
        return {
            v: sorted(chdb_client.query(f"SELECT * FROM {ch_database}.{v}").result_rows, key=repr)
            for v in views
        }

    old = numbers()
    assert [m.version for m in apply_migrations(chdb_client, ch_database, upto=10)] == [10]
    assert numbers() == old

    # `SELECT *` moves rows from hits_ingest to hits: the two must keep the same columns.
    def columns(table: str) -> list[tuple[Any, ...]]:
        return chdb_client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} AND default_kind != 'MATERIALIZED' ORDER BY position",
            parameters={"db": ch_database, "t": table},
        ).result_rows

    assert columns("hits") and columns("hits_ingest") == columns("hits")
    write(chdb_client, ch_database, before[::3], columns=OLD_COLUMNS)  # replays via hits_ingest
    assert numbers() == old
    check(chdb_client, ch_database, before)
    later = [m.version for m in load_migrations() if m.version > 10]
    assert [m.version for m in apply_migrations(chdb_client, ch_database)] == later
    check(chdb_client, ch_database, before)
    after = [dataclasses.replace(h, request_id=f"new-{h.request_id}") for h in before[:100]]
    write(chdb_client, ch_database, after)
    check(chdb_client, ch_database, before + after)
    victim = before[0].sid
    forget_subscriber(chdb_client, ch_database, victim or "")
    write(chdb_client, ch_database, before, after)
    check(chdb_client, ch_database, [h for h in before + after if h.sid != victim])


@pytest.mark.integration
def test_hits_ttl_keeps_aggregates(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    now = int(datetime.now(UTC).timestamp() * 1000)
    hits = generate(random.Random(9), 200, ["ttl"])
    hits = [
        dataclasses.replace(h, ts_ms=now - (10 if i % 2 else 1) * 86_400_000 - i)
        for i, h in enumerate(hits)
    ]
    write(chdb_client, ch_database, hits)
    before = summary(chdb_client, ch_database)
    assert apply_hits_ttl(chdb_client, ch_database, 7) == "raw hits kept 7 days"
    assert apply_hits_ttl(chdb_client, ch_database, 7) == "unchanged"
    chdb_client.command(f"OPTIMIZE TABLE {ch_database}.hits FINAL")
    left = chdb_client.command(f"SELECT count() FROM {ch_database}.hits")
    assert 0 < left < len(hits)  # the 10-day-old raw hits are gone …
    assert summary(chdb_client, ch_database) == before  # … and no number moved
    assert apply_hits_ttl(chdb_client, ch_database, 0) == "raw hits kept forever"


def opens(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.integration
def test_cli_schema_sends_report_forget(tmp_path: Path) -> None:
    """The analyst's commands end to end, each a fresh process on the embedded default."""
    env = {"OPENS_DATA_DIR": str(tmp_path)}
    first = opens(env, "schema", "apply")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_hits" in first.stdout
    again = opens(env, "schema", "apply")
    assert "up to date" in again.stdout
    csv = tmp_path / "sends.csv"
    csv.write_text("campaign,category,sent_at,sends\nwelcome,news,2026-11-20T08:00:00Z,10\n")
    for _ in range(2):
        out = opens(env, "sends", "load", str(csv))
        assert out.returncode == 0, out.stderr
    rep = opens(env, "report", "--format", "json")
    assert rep.returncode == 0, rep.stderr
    rows = json.loads(rep.stdout)
    assert rows[0]["campaign"] == "welcome"
    assert rows[0]["sends"] == 10
    assert rows[0]["open_rate"] == 0
    table = opens(env, "report")
    assert "welcome" in table.stdout
    assert "open rate" in table.stdout
    forgot = opens(env, "forget", "--sid", "nobody", "--yes")
    assert forgot.returncode == 0, forgot.stderr
    assert "removed 0 hits" in forgot.stdout
    # No terminal: no question, even without --yes (DESIGN §4).
    quiet = opens(env, "forget", "--sid", "someone", stdin="")
    assert quiet.returncode == 0, quiet.stderr
    assert "suppression list" in quiet.stdout
    undo = opens(env, "unforget", "--sid", "someone")
    assert undo.returncode == 0 and "off the suppression list" in undo.stdout, undo.stderr
    undo = opens(env, "unforget", "--sid", "someone")
    assert undo.returncode == 1 and "not on the suppression list" in undo.stderr
    assert "Traceback" not in undo.stderr
    bad = opens(env, "report", "--since", "whenever")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    cluster = opens(env, "schema", "apply", "--cluster", "prod", "--print")
    assert "ReplicatedAggregatingMergeTree" in cluster.stdout


@pytest.mark.integration
def test_freshness_reports_each_source(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    now = int(datetime.now(UTC).timestamp() * 1000)
    hits = generate(random.Random(1), 20, ["f"])
    write(chdb_client, ch_database, [dataclasses.replace(h, ts_ms=now - 5_000) for h in hits])
    old = [dataclasses.replace(h, source="standard", ts_ms=now - 3_600_000) for h in hits[:5]]
    write(chdb_client, ch_database, old)
    rows = {
        r[0]: r[1:]
        for r in chdb_client.query(
            f"SELECT source, toUnixTimestamp64Milli(last_event_at), lag_seconds "
            f"FROM {ch_database}.freshness"
        ).result_rows
    }
    assert rows["realtime"][0] == now - 5_000
    assert rows["standard"][0] == now - 3_600_000
    assert 4 < rows["realtime"][1] < 600
    assert 3_600 <= rows["standard"][1] < 4_200


@pytest.mark.integration
def test_opens_dashboard_serves_on_its_own(tmp_path: Path) -> None:
    import signal
    import time
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "OPENS_DATA_DIR": str(tmp_path), "OPENS_QUERY_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "processor", "dashboard"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    assert r.read() == b"Ok.\n"
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=5) as r:
            assert b"Email opens" in r.read()
        q = "SELECT%20count()%20FROM%20campaign_summary"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?query={q}", timeout=5) as r:
            assert r.read() == b"0\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
