"""The sink on the real ClickHouse engine (chDB): idempotent writes, retries while down."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from processor.metrics import Metrics
from processor.sinks.clickhouse.schema import apply_migrations, load_migrations
from processor.sinks.clickhouse.sink import ClickHouseSink
from tests.factories import HOSTILE, make_hit

pytestmark = pytest.mark.integration


def count(client: Any, db: str) -> int:
    return int(client.command(f"SELECT count() FROM {db}.hits FINAL"))


def test_migrations_are_idempotent(chdb_client: Any, ch_database: str) -> None:
    first = apply_migrations(chdb_client, ch_database)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert apply_migrations(chdb_client, ch_database) == []


def test_replayed_batches_change_nothing(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    sink = ClickHouseSink(lambda: chdb_client, ch_database, Metrics())
    hits = [make_hit(i) for i in range(100)]

    async def go() -> None:
        await sink.write(hits)
        await sink.write(hits[:40])  # a replay after a crash before the offset commit
        # The same request seen again by the standard log: different source, same request id.
        await sink.write([dataclasses.replace(h, source="standard") for h in hits[60:]])

    asyncio.run(go())
    assert count(chdb_client, ch_database) == 100
    assert sink.metrics.sink_rows._value.get() == 180  # rows sent, not rows counted


def test_hostile_values_round_trip(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    sink = ClickHouseSink(lambda: chdb_client, ch_database, Metrics())
    hits = [make_hit(i, sid=v, cid=v, cat=v, user_agent=v) for i, v in enumerate(HOSTILE)]
    asyncio.run(sink.write(hits))
    rows = chdb_client.query(
        f"SELECT request_id, sid, cid, cat, user_agent FROM {ch_database}.hits FINAL"
    ).result_rows
    got = {r[0]: r[1:] for r in rows}
    for h in hits:
        assert got[h.request_id] == (h.sid, h.cid, h.cat, h.user_agent)


def test_retries_while_clickhouse_is_unreachable(chdb_client: Any, ch_database: str) -> None:
    apply_migrations(chdb_client, ch_database)
    attempts = {"n": 0}

    def flaky_connect() -> Any:
        attempts["n"] += 1
        if attempts["n"] <= 3:
            raise ConnectionRefusedError("ClickHouse is down")
        return chdb_client

    metrics = Metrics()
    sink = ClickHouseSink(flaky_connect, ch_database, metrics, max_backoff=0.05)
    asyncio.run(sink.write([make_hit(i) for i in range(10)]))
    assert attempts["n"] == 4
    assert metrics.sink_failures._value.get() == 3
    assert count(chdb_client, ch_database) == 10


def test_event_loop_keeps_running_during_retries(chdb_client: Any, ch_database: str) -> None:
    """Backpressure, not a blocked loop: other tasks run while the sink waits for ClickHouse."""
    apply_migrations(chdb_client, ch_database)
    down = {"until": 5}

    def connect() -> Any:
        down["until"] -= 1
        if down["until"] > 0:
            raise OSError("unreachable")
        return chdb_client

    sink = ClickHouseSink(connect, ch_database, Metrics(), max_backoff=0.02)
    ticks = {"n": 0}

    async def ticker() -> None:
        while True:
            ticks["n"] += 1
            await asyncio.sleep(0.001)

    async def go() -> None:
        t = asyncio.create_task(ticker())
        await sink.write([make_hit(1)])
        t.cancel()

    asyncio.run(go())
    assert ticks["n"] > 5
    assert count(chdb_client, ch_database) == 1
