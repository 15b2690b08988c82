"""The analysts' views on the real ClickHouse engine, against a truth computed in Python."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.sinks.clickhouse.schema import apply_migrations
from tests.factories import HOSTILE, check, generate, summary, write

pytestmark = pytest.mark.integration


def test_duplicates_replays_and_two_paths_give_the_truth(
    chdb_client: Any, ch_database: str
) -> None:
    apply_migrations(chdb_client, ch_database)
    rnd = random.Random(42)
    hits = generate(rnd, 600, ["welcome", "black-friday", "digest"])
    # The standard log sees the same requests with whole-second timestamps.
    standard = [
        dataclasses.replace(h, source="standard", ts_ms=h.ts_ms - h.ts_ms % 1000) for h in hits
    ]
    write(chdb_client, ch_database, hits[:400], hits[200:], hits[:50], standard[::2])
    check(chdb_client, ch_database, hits + standard[::2])
    before = summary(chdb_client, ch_database)
    write(chdb_client, ch_database, hits, standard)  # everything once more
    check(chdb_client, ch_database, hits + standard)
    after = summary(chdb_client, ch_database)
    for cid in before:
        for k in ("opens", "unique_opens", "human_unique_opens", "machine_opens", "invalid_hits"):
            assert before[cid][k] == after[cid][k]


def test_late_hit_lands_in_its_minute(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    now = int(datetime.now(UTC).timestamp() * 1000)
    hour_ago = now - 3_600_000
    live = generate(random.Random(1), 1, ["late"])[0]
    live = dataclasses.replace(live, ts_ms=now, signature="valid", machine=None)
    late = dataclasses.replace(live, request_id="late-1", ts_ms=hour_ago, sid="other")
    write(chdb_client, ch_database, [live])
    write(chdb_client, ch_database, [late])  # arrives after, happened an hour before
    rows = chdb_client.query(
        "SELECT toUnixTimestamp(minute), opens, unique_opens FROM {db:Identifier}.opens_timeline"
        " WHERE campaign = 'late' ORDER BY minute",
        parameters={"db": ch_database},
    ).result_rows
    assert rows == [(hour_ago // 60_000 * 60, 1, 1), (now // 60_000 * 60, 1, 1)]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 60),
    replays=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=4),
)
def test_any_replay_pattern_counts_each_request_once(
    chdb_client: Any, seed: int, n: int, replays: list[tuple[int, int]]
) -> None:
    db = f"p_{seed}_{n}_{len(replays)}"
    chdb_client.command(f"DROP DATABASE IF EXISTS {db}")
    apply_migrations(chdb_client, db)
    try:
        hits = generate(random.Random(seed), n, ["a", "b"])
        batches = [hits] + [hits[min(i, j) : max(i, j)] for i, j in replays]
        random.Random(seed).shuffle(batches)
        write(chdb_client, db, *batches)
        check(chdb_client, db, hits)
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {db}")


def test_hostile_campaign_ids_round_trip_through_views(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    base = generate(random.Random(5), 1, ["x"])[0]
    hits = [
        dataclasses.replace(base, request_id=f"h{i}", cid=v, sid=v, cat=v, signature="valid")
        for i, v in enumerate(HOSTILE)
    ]
    write(chdb_client, ch_database, hits)
    got = summary(chdb_client, ch_database)
    assert set(got) == set(HOSTILE)
    assert all(got[v]["unique_opens"] == 1 for v in HOSTILE)


def test_country_breakdown_adds_up_when_one_path_lacks_the_country(
    chdb_client: Any, ch_database: str
) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = [
        dataclasses.replace(h, signature="valid", country="DE")
        for h in generate(random.Random(12), 80, ["geo"])
    ]
    legacy = [dataclasses.replace(h, source="standard", country="") for h in hits[::2]]
    write(chdb_client, ch_database, hits, legacy)
    rows = dict(
        (r[0], r[1])
        for r in chdb_client.query(
            "SELECT country, opens FROM {db:Identifier}.opens_by_country WHERE campaign = 'geo'",
            parameters={"db": ch_database},
        ).result_rows
    )
    assert rows == {"DE": len({h.request_id for h in hits})}


def test_country_unknown_everywhere_is_one_bucket(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = [
        dataclasses.replace(h, signature="valid", country="")
        for h in generate(random.Random(13), 20, ["nowhere"])
    ]
    write(chdb_client, ch_database, hits)
    rows = chdb_client.query(
        "SELECT country, opens FROM {db:Identifier}.opens_by_country",
        parameters={"db": ch_database},
    ).result_rows
    assert rows == [("", len({h.request_id for h in hits}))]
