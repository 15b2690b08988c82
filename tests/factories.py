"""Generated hits whose truth is known, and helpers to write and read them back."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import defaultdict
from typing import Any

from processor.core.hit import Hit
from processor.metrics import Metrics
from processor.sinks.clickhouse.sink import HIT_COLUMNS, INGEST_TABLE, ClickHouseSink

# `hits` before migration 0012 (no proxy, certainty, rules_version, signals).
OLD_COLUMNS = HIT_COLUMNS[:20]

HOSTILE = ["'; DROP TABLE hits; --", "quote'\"`", "emoji 📬✉️", "x" * 10_000, "tab\tnew\nline"]


def make_hit(i: int, **kw: Any) -> Hit:
    base = Hit(
        request_id=f"req-{i}",
        ts_ms=1_764_000_000_000 + i,
        source="realtime",
        sid=f"s{i % 7}",
        cid=f"c{i % 3}",
        cat="",
        signature="missing",
        method="GET",
        status=200,
        uri="/o.gif",
        edge_location="FRA56-P1",
        client_ip="203.0.113.0",
        country="DE",
        user_agent="Mozilla/5.0",
        client="",
        device="",
        machine=None,
        referer="",
        bytes=43,
        time_taken=0.001,
    )
    return dataclasses.replace(base, **kw)


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
                source="realtime",
                sid=f"s{rnd.randint(1, max(2, n // 3))}",
                cid=rnd.choice(campaigns),
                cat="news",
                signature=rnd.choice(["valid", "valid", "missing", "invalid"]),
                method="GET",
                status=200,
                uri="/o.gif",
                edge_location="FRA56-P1",
                client_ip="203.0.113.0",
                country=rnd.choice(["DE", "US", "FR", ""]),
                user_agent="ua",
                client=client,
                device=device,
                machine=rnd.choice(MACHINES),
                referer="",
                bytes=43,
                time_taken=0.001,
            )
        )
    return hits


def quality(h: Hit) -> int:
    """How rich a copy of a request is: real time's milliseconds, then a country."""
    return 2 * (h.source == "realtime") + (h.country != "")


def first_key(h: Hit) -> tuple[int, int, int]:
    """Copies of one request in the order the schema prefers them: earliest second, richest."""
    return (h.ts_ms // 1000, -quality(h), h.ts_ms % 1000)


def last_key(h: Hit) -> tuple[int, int, int]:
    return (h.ts_ms // 1000, quality(h), h.ts_ms % 1000)


def canonical(sightings: list[Hit]) -> list[Hit]:
    """One row per request: of its copies (same campaign, subscriber, id and UTC day), the
    earliest second, then the richest copy, then the earliest millisecond."""
    best: dict[tuple[str, str, str, int], Hit] = {}
    for h in sightings:
        key = (h.cid or "", h.sid or "", h.request_id, h.ts_ms // 86_400_000)
        if key not in best or first_key(h) < first_key(best[key]):
            best[key] = h
    return list(best.values())


def truth(sightings: list[Hit]) -> dict[str, dict[str, Any]]:
    """Counts over the canonical row of each request; a campaign appears with countable opens
    (forged hits alone make no campaign row); first/last open from the richest copy."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"opens": 0, "machine": 0, "invalid": 0, "uniq": set(), "human": set()}
    )
    for h in canonical(sightings):
        c = out[h.cid or ""]
        if h.signature == "invalid":
            c["invalid"] += 1
            continue
        c["opens"] += 1
        c["uniq"].add(h.sid)
        if h.machine:
            c["machine"] += 1
        else:
            c["human"].add(h.sid)
    firsts: dict[str, Hit] = {}
    lasts: dict[str, Hit] = {}
    for h in sightings:
        if h.signature == "invalid":
            continue
        cid = h.cid or ""
        if cid not in firsts or first_key(h) < first_key(firsts[cid]):
            firsts[cid] = h
        if cid not in lasts or last_key(h) > last_key(lasts[cid]):
            lasts[cid] = h
    return {
        cid: {
            "opens": c["opens"],
            "unique_opens": len(c["uniq"]),
            "human_unique_opens": len(c["human"]),
            "machine_opens": c["machine"],
            "invalid_hits": c["invalid"],
            "first_open_at": firsts[cid].ts_ms,
            "last_open_at": lasts[cid].ts_ms,
        }
        for cid, c in out.items()
        if c["opens"]
    }


def summary(client: Any, db: str) -> dict[str, dict[str, Any]]:
    rows = client.query(
        "SELECT campaign, opens, unique_opens, human_unique_opens, machine_opens, invalid_hits,"
        " toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(last_open_at),"
        " sends, open_rate, human_open_rate FROM {db:Identifier}.campaign_summary",
        parameters={"db": db},
    ).result_rows
    keys = (
        "opens",
        "unique_opens",
        "human_unique_opens",
        "machine_opens",
        "invalid_hits",
        "first_open_at",
        "last_open_at",
        "sends",
        "open_rate",
        "human_open_rate",
    )
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def write(
    client: Any,
    db: str,
    *batches: list[Hit],
    table: str = INGEST_TABLE,
    columns: tuple[str, ...] = HIT_COLUMNS,
) -> None:
    """Through the worker's sink; ``table="hits"`` for a database older than migration 10,
    ``columns=OLD_COLUMNS`` for one older than 0012."""
    if table == "hits":
        columns = OLD_COLUMNS
    sink = ClickHouseSink(lambda: client, db, Metrics(), table=table, columns=columns)

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
            " GROUP BY campaign",
            parameters={"db": db},
        ).result_rows
        for cid, opens, uniq in rows:
            assert (opens, uniq) == (expected[cid]["opens"], expected[cid]["unique_opens"]), dim
    rows = client.query(
        "SELECT campaign, sum(opens), sum(unique_opens), sum(machine_opens)"
        " FROM {db:Identifier}.opens_timeline GROUP BY campaign",
        parameters={"db": db},
    ).result_rows
    for cid, opens, uniq, machine in rows:
        exp = expected[cid]
        assert (opens, uniq, machine) == (exp["opens"], exp["unique_opens"], exp["machine_opens"])
