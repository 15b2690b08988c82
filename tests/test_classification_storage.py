"""Migration 0012 (issue #17): proxy, certainty, rules_version and signals stored; probable
machine opens counted apart; upgrading a database with data moves no number."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from processor.core.hit import Hit
from processor.sinks.clickhouse.schema import apply_migrations, load_migrations
from processor.sinks.clickhouse.seal import seal_quiet_days
from tests.factories import OLD_COLUMNS, canonical, check, generate, write

pytestmark = pytest.mark.integration

OLD_SUMMARY = (
    "campaign, category, sends, opens, unique_opens, human_unique_opens, machine_opens, "
    "invalid_hits, open_rate, human_open_rate, first_open_at, last_open_at, first_human_open_at"
)
VIEWS = {
    "campaign_summary": OLD_SUMMARY,
    "opens_timeline": "*",
    "opens_by_hour_of_day": "*",
    "opens_by_client": "*",
    "opens_by_country": "*",
    "opens_by_machine_reason": "*",
}


def numbers(client: Any, db: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        v: sorted(client.query(f"SELECT {cols} FROM {db}.{v}").result_rows, key=repr)
        for v, cols in VIEWS.items()
    }


def classified(hits: list[Hit], rnd: random.Random) -> list[Hit]:
    """The same requests with today's axes: some machine verdicts probable, proxies named."""
    out = []
    for h in hits:
        certainty = rnd.choice(["certain", "probable"]) if h.machine else ""
        proxy = rnd.choice(["", "google", "apple"])
        out.append(
            dataclasses.replace(
                h, proxy=proxy, certainty=certainty, rules_version="2026.12.1", signals="as3320"
            )
        )
    return out


def probable_truth(hits: list[Hit]) -> dict[str, tuple[int, int]]:
    """Per campaign: probable machine requests, and subscribers with an open that is not a
    certain machine open."""
    out: dict[str, tuple[int, set[str]]] = {}
    for h in canonical(hits):
        if h.signature == "invalid":
            continue
        n, subs = out.get(h.cid or "", (0, set()))
        n += bool(h.machine) and h.certainty == "probable"
        if not h.machine or h.certainty == "probable":
            subs.add(h.sid or "")
        out[h.cid or ""] = (n, subs)
    return {cid: (n, len(subs)) for cid, (n, subs) in out.items()}


def summary_probable(client: Any, db: str) -> dict[str, tuple[int, int]]:
    rows = client.query(
        f"SELECT campaign, probable_machine_opens, human_unique_opens_with_probable "
        f"FROM {db}.campaign_summary"
    ).result_rows
    return {r[0]: (r[1], r[2]) for r in rows}


def test_upgrade_to_0012_moves_no_number_and_counts_probable_opens(
    chdb_client: Any, ch_database: str
) -> None:
    db = ch_database
    apply_migrations(chdb_client, db, upto=11)
    before = generate(random.Random(13), 400, ["alpha", "beta"])
    write(chdb_client, db, before, before[::5], columns=OLD_COLUMNS)
    seal_quiet_days(chdb_client, db, margin_seconds=0)  # old days read from their seals
    old = numbers(chdb_client, db)
    assert [m.version for m in apply_migrations(chdb_client, db)] == [
        m.version for m in load_migrations() if m.version > 11
    ]
    assert numbers(chdb_client, db) == old
    # Old rows: no probable verdict, so both new columns equal what they extend.
    got = summary_probable(chdb_client, db)
    human = {r[0]: r[1] for r in chdb_client.query(
        f"SELECT campaign, human_unique_opens FROM {db}.campaign_summary").result_rows}  # fmt: skip
    assert got == {cid: (0, human[cid]) for cid in human}

    def columns(table: str) -> list[tuple[Any, ...]]:
        return chdb_client.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} AND default_kind != 'MATERIALIZED' ORDER BY position",
            parameters={"db": db, "t": table},
        ).result_rows

    assert columns("hits_ingest") == columns("hits")
    assert ("certainty", "LowCardinality(String)") in columns("hits")

    # New rows carry the axes through hits_ingest into hits and the counts.
    rnd = random.Random(14)
    after = classified(generate(random.Random(15), 300, ["alpha", "gamma"]), rnd)
    after = [dataclasses.replace(h, request_id=f"new-{h.request_id}") for h in after]
    write(chdb_client, db, after, after[::4])
    stored = chdb_client.query(
        f"SELECT request_id, proxy, certainty, rules_version, signals FROM {db}.hits FINAL "
        "WHERE request_id LIKE 'new-%'"
    ).result_rows
    assert sorted(stored) == sorted(
        (h.request_id, h.proxy, h.certainty, h.rules_version, h.signals) for h in after
    )
    everything = before + after
    check(chdb_client, db, everything)
    assert summary_probable(chdb_client, db) == probable_truth(everything)
    seal_quiet_days(chdb_client, db, margin_seconds=0)  # the same numbers from the seals
    check(chdb_client, db, everything)
    assert summary_probable(chdb_client, db) == probable_truth(everything)
    chdb_client.command(f"OPTIMIZE TABLE {db}.opener_state FINAL")
    assert summary_probable(chdb_client, db) == probable_truth(everything)
