"""The analysts' views on the real ClickHouse engine, against a truth computed in Python."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.hit import Hit
from processor.metrics import Metrics
from processor.sinks.clickhouse.schema import apply_migrations
from processor.sinks.clickhouse.sink import ClickHouseSink
from tests.test_clickhouse_sink import HOSTILE

pytestmark = pytest.mark.integration

BASE_MS = 1_764_000_000_000
MACHINES = [None, None, None, "apple_mpp", "gmail_prefetch", "security_scanner"]
CLIENTS = [("Apple Mail", "desktop"), ("Gmail", "webmail"), ("Outlook", "desktop"), ("", "")]


def generate(rnd: random.Random, n: int, campaigns: list[str]) -> list[Hit]:
    hits = []
    for i in range(n):
        client, device = rnd.choice(CLIENTS)
        hits.append(
            Hit(
                request_id=f"r{i}-{rnd.getrandbits(32):08x}",
                ts_ms=BASE_MS + rnd.randint(-3 * 86_400_000, 86_400_000),
                source="realtime", sid=f"s{rnd.randint(1, max(2, n // 3))}",
                cid=rnd.choice(campaigns), cat="news",
                signature=rnd.choice(["valid", "valid", "missing", "invalid"]),
                method="GET", status=200, uri="/o.gif", edge_location="FRA56-P1",
                client_ip="203.0.113.0", country=rnd.choice(["DE", "US", "FR", ""]),
                user_agent="ua", client=client, device=device,
                machine=rnd.choice(MACHINES), referer="", bytes=43, time_taken=0.001,
            )
        )
    return hits


def truth(sightings: list[Hit]) -> dict[str, dict[str, Any]]:
    """Counts over distinct request ids; first/last open over every sighting of a request
    (the standard log has whole seconds, the real-time log milliseconds)."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"opens": set(), "machine": set(), "invalid": set(), "uniq": set(),
                 "human": set(), "ts": []}
    )
    for h in sightings:
        c = out[h.cid or ""]
        if h.signature == "invalid":
            c["invalid"].add(h.request_id)
            continue
        c["opens"].add(h.request_id)
        c["uniq"].add(h.sid)
        c["ts"].append(h.ts_ms)
        if h.machine:
            c["machine"].add(h.request_id)
        else:
            c["human"].add(h.sid)
    return {
        cid: {
            "opens": len(c["opens"]), "unique_opens": len(c["uniq"]),
            "human_unique_opens": len(c["human"]), "machine_opens": len(c["machine"]),
            "invalid_hits": len(c["invalid"]),
            "first_open_at": min(c["ts"]) if c["ts"] else None,
            "last_open_at": max(c["ts"]) if c["ts"] else None,
        }
        for cid, c in out.items()
    }


def summary(client: Any, db: str) -> dict[str, dict[str, Any]]:
    rows = client.query(
        "SELECT campaign, opens, unique_opens, human_unique_opens, machine_opens, invalid_hits,"
        " toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(last_open_at),"
        " sends, open_rate, human_open_rate FROM {db:Identifier}.campaign_summary",
        parameters={"db": db},
    ).result_rows
    keys = ("opens", "unique_opens", "human_unique_opens", "machine_opens", "invalid_hits",
            "first_open_at", "last_open_at", "sends", "open_rate", "human_open_rate")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def write(client: Any, db: str, *batches: list[Hit]) -> None:
    sink = ClickHouseSink(lambda: client, db, Metrics())

    async def go() -> None:
        for b in batches:
            await sink.write(b)

    asyncio.run(go())


def check(client: Any, db: str, hits: list[Hit]) -> None:
    expected = truth(hits)
    got = summary(client, db)
    assert set(got) == set(expected)
    for cid, exp in expected.items():
        row = {k: got[cid][k] for k in exp}
        assert row == exp, cid
    # Breakdowns add up to the same totals.
    for view, dim in (("opens_by_client", "client"), ("opens_by_country", "country")):
        rows = client.query(
            f"SELECT campaign, sum(opens), sum(unique_opens) FROM {{db:Identifier}}.{view}"
            " GROUP BY campaign", parameters={"db": db},
        ).result_rows
        for cid, opens, uniq in rows:
            assert (opens, uniq) == (expected[cid]["opens"], expected[cid]["unique_opens"]), dim
    rows = client.query(
        "SELECT campaign, sum(opens), sum(unique_opens), sum(machine_opens)"
        " FROM {db:Identifier}.opens_timeline GROUP BY campaign", parameters={"db": db},
    ).result_rows
    for cid, opens, uniq, machine in rows:
        exp = expected[cid]
        assert (opens, uniq, machine) == (exp["opens"], exp["unique_opens"], exp["machine_opens"])


def test_duplicates_replays_and_two_paths_give_the_truth(chdb_client: Any, ch_database: str) -> None:
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
        " WHERE campaign = 'late' ORDER BY minute", parameters={"db": ch_database},
    ).result_rows
    assert rows == [(hour_ago // 60_000 * 60, 1, 1), (now // 60_000 * 60, 1, 1)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32), n=st.integers(1, 60),
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
