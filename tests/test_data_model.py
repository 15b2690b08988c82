"""One canonical row per request and attribution by the first human open (migration 0011),
checked against a truth computed here from the generated requests."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.hit import Hit
from processor.sinks.clickhouse.schema import apply_migrations
from processor.sinks.clickhouse.seal import seal_quiet_days
from tests.factories import canonical, check, first_key, generate, write


def standard_copy(h: Hit) -> Hit:
    """The request as a legacy standard log line shows it: whole seconds, no country."""
    return dataclasses.replace(h, source="standard", ts_ms=h.ts_ms // 1000 * 1000, country="")


def rows(client: Any, db: str, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql.replace("{db}", db)).result_rows]


def attributed(hits: list[Hit]) -> dict[tuple[str, str], Hit]:
    """Each opener's first human open, else their first open, over canonical rows."""
    best: dict[tuple[str, str], Hit] = {}
    for h in canonical(hits):
        if h.signature == "invalid":
            continue
        key = (h.cid or "", h.sid or "")
        rank = (h.machine is not None, first_key(h))
        if key not in best or rank < (best[key].machine is not None, first_key(best[key])):
            best[key] = h
    return best


def expected_breakdowns(hits: list[Hit]) -> dict[str, Counter[tuple[Any, ...]]]:
    opens: dict[str, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    for h in canonical(hits):
        if h.signature == "invalid":
            continue
        opens["client"][(h.cid, h.client, h.device)] += 1
        opens["country"][(h.cid, h.country)] += 1
        if h.machine:
            opens["machine"][(h.cid, h.machine)] += 1
    for (cid, _), h in attributed(hits).items():
        opens["client_u"][(cid, h.client, h.device)] += 1
        opens["country_u"][(cid, h.country)] += 1
    reasons: set[tuple[str, str, str]] = {
        (h.cid or "", h.machine, h.sid or "")
        for h in canonical(hits)
        if h.machine and h.signature != "invalid"
    }
    opens["machine_u"] = Counter((c, m) for c, m, _ in reasons)
    return opens


def check_breakdowns(client: Any, db: str, hits: list[Hit]) -> None:
    exp = expected_breakdowns(hits)
    got = rows(
        client, db, "SELECT campaign, client, device, opens, unique_opens FROM {db}.opens_by_client"
    )
    assert {r[:3]: r[3] for r in got} == dict(exp["client"])
    assert {r[:3]: r[4] for r in got if r[4]} == dict(exp["client_u"])
    got = rows(
        client, db, "SELECT campaign, country, opens, unique_opens FROM {db}.opens_by_country"
    )
    assert {r[:2]: r[2] for r in got} == dict(exp["country"])
    assert {r[:2]: r[3] for r in got if r[3]} == dict(exp["country_u"])
    got = rows(
        client, db, "SELECT campaign, machine, opens, subscribers FROM {db}.opens_by_machine_reason"
    )
    assert {r[:2]: r[2] for r in got} == dict(exp["machine"])
    assert {r[:2]: r[3] for r in got} == dict(exp["machine_u"])
    # The timeline's columns add up to the campaign's numbers.
    got = rows(
        client,
        db,
        "SELECT campaign, sum(opens), sum(unique_opens), sum(human_unique_opens) "
        "FROM {db}.opens_timeline GROUP BY campaign",
    )
    summary = rows(
        client,
        db,
        "SELECT campaign, opens, unique_opens, human_unique_opens FROM {db}.campaign_summary",
    )
    assert sorted(got) == sorted(summary)


def sample(seed: int) -> list[Hit]:
    hits = generate(random.Random(seed), 600, ["promo", "news"])
    return [
        dataclasses.replace(h, ts_ms=h.ts_ms + random.Random(i).randint(1, 999))
        for i, h in enumerate(hits)
    ]


@pytest.mark.integration
@pytest.mark.parametrize("standard_first", [False, True])
def test_overlap_in_either_order_keeps_real_time_copies(
    chdb_client: Any, ch_database: str, standard_first: bool
) -> None:
    apply_migrations(chdb_client, ch_database)
    realtime = sample(3)
    copies = [standard_copy(h) for h in realtime[::2]]
    batches = [copies, realtime] if standard_first else [realtime, copies]
    write(chdb_client, ch_database, *batches)
    sightings = realtime + copies
    for step in ("as written", "after merges", "sealed", "late data"):
        if step == "after merges":
            for t in ("hits", "opener_state"):
                chdb_client.command(f"OPTIMIZE TABLE {ch_database}.{t} FINAL")
        if step == "sealed":
            assert seal_quiet_days(chdb_client, ch_database, margin_seconds=0).days
        if step == "late data":
            late = [
                dataclasses.replace(h, request_id="late-" + h.request_id) for h in realtime[:40]
            ]
            write(chdb_client, ch_database, [standard_copy(h) for h in late], realtime[::5])
            sightings += [standard_copy(h) for h in late]
        check(chdb_client, ch_database, sightings)
        check_breakdowns(chdb_client, ch_database, sightings)
    # Every kept row of a request seen twice is its real-time copy, with its milliseconds.
    kept = rows(
        chdb_client,
        ch_database,
        "SELECT source, count() FROM {db}.hits FINAL WHERE NOT startsWith(request_id, 'late-') "
        "GROUP BY source",
    )
    assert kept == [("realtime", len(realtime))]


@pytest.mark.integration
def test_attribution_prefers_the_first_human_open(chdb_client: Any, ch_database: str) -> None:
    """An Apple prefetch before the person's own open: the opener counts under the person's
    client and country, and first_open_at stays the prefetch's time."""
    apply_migrations(chdb_client, ch_database)
    base = 1_764_000_000_000
    proxy = Hit(
        **{
            **dataclasses.asdict(sample(1)[0]),
            "request_id": "p",
            "ts_ms": base,
            "sid": "jane",
            "cid": "promo",
            "signature": "valid",
            "client": "Apple Mail",
            "device": "proxy",
            "country": "US",
            "machine": "apple_mpp",
        }
    )
    person = dataclasses.replace(
        proxy,
        request_id="h",
        ts_ms=base + 3_600_123,
        client="Gmail",
        device="mobile",
        country="DE",
        machine=None,
    )
    write(chdb_client, ch_database, [person, proxy])
    got = rows(
        chdb_client,
        ch_database,
        "SELECT toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(first_human_open_at),"
        " unique_opens, human_unique_opens FROM {db}.campaign_summary",
    )
    assert got == [(base, base + 3_600_123, 1, 1)]
    assert rows(
        chdb_client,
        ch_database,
        "SELECT country, unique_opens FROM {db}.opens_by_country ORDER BY country",
    ) == [("DE", 1), ("US", 0)]
    assert rows(
        chdb_client,
        ch_database,
        "SELECT client, unique_opens FROM {db}.opens_by_client ORDER BY client",
    ) == [("Apple Mail", 0), ("Gmail", 1)]


@pytest.mark.integration
def test_forged_hits_neither_rename_nor_create_campaigns(
    chdb_client: Any, ch_database: str
) -> None:
    apply_migrations(chdb_client, ch_database)
    real = [dataclasses.replace(h, cat="promo", signature="valid") for h in sample(5)[:50]]
    forged = [
        dataclasses.replace(h, request_id=f"f{i}", cat="zzz-hijacked", signature="invalid")
        for i, h in enumerate(real[:5])
    ]
    stranger = [
        dataclasses.replace(h, cid="nobody", request_id=f"x{i}") for i, h in enumerate(forged)
    ]
    write(chdb_client, ch_database, real, forged, stranger)
    summary = rows(
        chdb_client,
        ch_database,
        "SELECT campaign, category, invalid_hits FROM {db}.campaign_summary",
    )
    cids = {h.cid for h in real}
    assert {r[0] for r in summary} == cids
    assert {r[1] for r in summary} == {"promo"}
    invalid = rows(
        chdb_client,
        ch_database,
        "SELECT campaign, invalid_hits, known_campaign FROM {db}.invalid_hits_by_campaign",
    )
    assert ("nobody", 5, 0) in invalid


@pytest.mark.integration
def test_one_request_two_event_times_counts_once(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = [dataclasses.replace(h, signature="valid") for h in sample(7)[:100]]
    moved = [dataclasses.replace(h, ts_ms=h.ts_ms + 7 * 60_000) for h in hits]
    same_day = [
        m
        for m, h in zip(moved, hits, strict=True)
        if m.ts_ms // 86_400_000 == h.ts_ms // 86_400_000
    ]
    write(chdb_client, ch_database, hits, same_day)
    got = rows(chdb_client, ch_database, "SELECT sum(opens) FROM {db}.opens_timeline")
    assert got == [(len(hits),)]
    check(chdb_client, ch_database, hits + same_day)


@pytest.mark.integration
@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])
def test_local_hours_in_any_time_zone(chdb_client: Any, ch_database: str, tz: str) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = sample(11)
    write(chdb_client, ch_database, hits)
    zone = ZoneInfo(tz)

    def local(ms: int) -> tuple[int, int]:
        t = datetime.fromtimestamp(ms // 60_000 * 60, UTC).astimezone(zone)
        return t.hour, t.isoweekday()

    opens: Counter[tuple[str, int, int]] = Counter()
    for h in canonical(hits):
        if h.signature != "invalid":
            opens[(h.cid or "", *local(h.ts_ms))] += 1
    unique: Counter[tuple[str, int, int]] = Counter(
        (cid, *local(h.ts_ms)) for (cid, _), h in attributed(hits).items()
    )
    got = rows(
        chdb_client,
        ch_database,
        "SELECT campaign, hour, weekday, opens, unique_opens "
        f"FROM {{db}}.opens_by_local_hour(tz='{tz}')",
    )
    assert {r[:3]: r[3] for r in got} == dict(opens)
    assert {r[:3]: r[4] for r in got if r[4]} == dict(unique)
    utc = rows(chdb_client, ch_database, "SELECT * FROM {db}.opens_by_hour_of_day")
    assert sorted(utc) == sorted(
        rows(chdb_client, ch_database, "SELECT * FROM {db}.opens_by_local_hour(tz='UTC')")
    )


@pytest.mark.integration
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(4)),
    seal_after=st.integers(min_value=0, max_value=4),
    merge=st.booleans(),
)
def test_any_arrival_order_gives_the_truth(
    chdb_client: Any, order: list[int], seal_after: int, merge: bool
) -> None:
    """Real-time hits, their legacy copies, replays and copies moved within the day, written
    in any order, sealed at any point and merged or not: every view equals the truth."""
    db = "t_" + uuid.uuid4().hex[:12]
    chdb_client.command(f"CREATE DATABASE {db}")
    try:
        apply_migrations(chdb_client, db)
        realtime = sample(13)[:240]
        batches = [
            realtime[:120],
            [standard_copy(h) for h in realtime[::3]],
            realtime[100:],
            realtime[::7],
        ]
        for i, b in enumerate(order):
            if i == seal_after:
                seal_quiet_days(chdb_client, db, margin_seconds=0)
            write(chdb_client, db, batches[b])
        if merge:
            for t in ("hits", "opener_state"):
                chdb_client.command(f"OPTIMIZE TABLE {db}.{t} FINAL")
        sightings = [h for b in batches for h in b]
        check(chdb_client, db, sightings)
        check_breakdowns(chdb_client, db, sightings)
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {db}")
