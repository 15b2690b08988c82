"""Report, sends and forget on the real ClickHouse engine (chDB)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from processor.analytics.forget import forget_subscriber
from processor.analytics.report import (
    SUMMARY_COLUMNS,
    campaign_report,
    parse_since,
    to_csv,
    to_json,
)
from processor.analytics.sends import load_sends, read_sends
from processor.errors import OpensError
from processor.sinks.clickhouse.schema import apply_migrations
from tests.factories import generate, summary, truth, write

pytestmark = pytest.mark.integration


def sends_csv(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "sends.csv"
    p.write_text("campaign,category,sent_at,sends\n" + "\n".join(rows) + "\n")
    return p


def test_sends_reload_replaces_and_rates_follow(
    chdb_client: Any, ch_database: str, tmp_path: Path
) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = generate(random.Random(2), 300, ["welcome", "digest"])
    write(chdb_client, ch_database, hits)
    f = sends_csv(
        tmp_path,
        [
            "welcome,news,2026-11-20T08:00:00Z,1000",
            "welcome,news,2026-11-21T08:00:00Z,500",
            "digest,,2026-11-20,250",
        ],
    )
    rows = read_sends(f)
    load_sends(chdb_client, ch_database, rows)
    load_sends(chdb_client, ch_database, rows)  # the same file again: replaces, not adds
    got = summary(chdb_client, ch_database)
    exp = truth(hits)
    assert got["welcome"]["sends"] == 1500
    assert got["digest"]["sends"] == 250
    assert got["welcome"]["open_rate"] == pytest.approx(exp["welcome"]["unique_opens"] / 1500)
    assert got["welcome"]["human_open_rate"] == pytest.approx(
        exp["welcome"]["human_unique_opens"] / 1500
    )
    # A corrected count for the same send replaces the old one.
    load_sends(
        chdb_client, ch_database, read_sends(sends_csv(tmp_path, ["digest,,2026-11-20,300"]))
    )
    assert summary(chdb_client, ch_database)["digest"]["sends"] == 300


def test_campaign_with_sends_but_no_opens_is_listed(
    chdb_client: Any, ch_database: str, tmp_path: Path
) -> None:
    apply_migrations(chdb_client, ch_database)
    load_sends(
        chdb_client, ch_database, read_sends(sends_csv(tmp_path, ["quiet,promo,2026-11-20,40"]))
    )
    row = summary(chdb_client, ch_database)["quiet"]
    assert (row["sends"], row["opens"], row["unique_opens"], row["open_rate"]) == (40, 0, 0, 0.0)
    assert row["first_open_at"] is None


@pytest.mark.parametrize(
    "rows",
    [
        ["welcome,news,not-a-date,10"],
        ["welcome,news,2026-11-20,-3"],
        ["welcome,news,2026-11-20,ten"],
    ],
)
def test_bad_sends_row_names_its_line(tmp_path: Path, rows: list[str]) -> None:
    with pytest.raises(OpensError, match=r"sends.csv:2"):
        read_sends(sends_csv(tmp_path, rows))


def test_report_matches_campaign_summary(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    write(chdb_client, ch_database, generate(random.Random(4), 200, ["a", "b", "c"]))
    rep = campaign_report(chdb_client, ch_database)
    assert rep.columns == SUMMARY_COLUMNS
    direct = chdb_client.query(
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM {ch_database}.campaign_summary ORDER BY campaign"
    ).result_rows
    assert rep.rows == [tuple(r) for r in direct]
    only_b = campaign_report(chdb_client, ch_database, campaigns=["b", "'; DROP TABLE hits; --"])
    assert [r[0] for r in only_b.rows] == ["b"]
    decoded = json.loads(to_json(rep))
    assert [d["campaign"] for d in decoded] == ["a", "b", "c"]
    assert set(decoded[0]) == set(SUMMARY_COLUMNS)
    assert decoded[0]["first_open_at"].endswith("Z")
    assert to_csv(rep).splitlines()[0] == ",".join(SUMMARY_COLUMNS)
    future = campaign_report(chdb_client, ch_database, since=datetime(2100, 1, 1, tzinfo=UTC))
    assert future.rows == []


def test_parse_since() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now) == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T08:00:00Z", now) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="cannot read time"):
        parse_since("yesterday-ish", now)


def test_forget_removes_exactly_one_subscriber(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = generate(random.Random(6), 400, ["welcome", "digest"])
    write(chdb_client, ch_database, hits, hits[:100])
    victim = hits[0].sid
    assert victim is not None
    done = forget_subscriber(chdb_client, ch_database, victim)
    assert done.hits == len({h.request_id for h in hits if h.sid == victim})
    remaining = [h for h in hits if h.sid != victim]
    exp = truth(remaining)
    got = summary(chdb_client, ch_database)
    for cid, e in exp.items():
        assert {k: got[cid][k] for k in e} == e, cid
    n = chdb_client.command(
        "SELECT count() FROM {db:Identifier}.first_opens WHERE sid = {s:String}",
        parameters={"db": ch_database, "s": victim},
    )
    assert n == 0
    # Breakdowns and timeline agree with the summary after the erasure.
    rows = chdb_client.query(
        f"SELECT campaign, sum(opens), sum(unique_opens) FROM {ch_database}.opens_timeline "
        "GROUP BY campaign"
    ).result_rows
    for cid, opens, uniq in rows:
        assert (opens, uniq) == (exp[cid]["opens"], exp[cid]["unique_opens"])
