"""The ClickHouse-compatible HTTP server over chDB, and the sink writing to it over HTTP."""

from __future__ import annotations

import asyncio
import random
import urllib.error
import urllib.request
from typing import Any

import clickhouse_connect
import pytest

from processor.devstack.chdb_server import (
    ChdbServer,
    ClickHouseHTTPError,
    decompress,
    engine_settings,
    split_insert,
)
from processor.metrics import Metrics
from processor.sinks.clickhouse.client import ClickHouseTarget, connect
from processor.sinks.clickhouse.schema import apply_migrations
from processor.sinks.clickhouse.sink import ClickHouseSink
from tests.factories import check, generate

pytestmark = pytest.mark.integration


def test_split_insert_separates_statement_and_data() -> None:
    got = split_insert(b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n\x02\x03\nrest")
    assert got is not None
    assert (got.target, got.settings, got.fmt, got.data) == (
        "db.t (`a`, `b`)",
        "",
        "Native",
        b"\x02\x03\nrest",
    )
    with_settings = split_insert(b"insert  into t SETTINGS async_insert=0 FORMAT TSV\n1\n")
    assert with_settings is not None
    assert (with_settings.target, with_settings.settings, with_settings.data) == (
        "t",
        "SETTINGS async_insert=0",
        b"1\n",
    )
    assert split_insert(b"INSERT INTO t VALUES (1)") is None
    assert split_insert(b"SELECT 1 FORMAT Native") is None


def test_request_bodies_and_settings() -> None:
    import gzip

    import lz4.frame

    body = b"INSERT INTO t FORMAT Native\n" + bytes(range(256)) * 100
    assert decompress(lz4.frame.compress(body), "lz4") == body
    assert decompress(gzip.compress(body), "gzip") == body
    assert decompress(body, None) == body
    with pytest.raises(ClickHouseHTTPError) as err:
        decompress(body, "lz4")  # not lz4 at all
    assert (err.value.code, err.value.status) == (48, 501)
    query = {
        "query": "SELECT 1",
        "session_id": "s",
        "param_x": "1",
        "max_threads": "2",
        "no_such_setting": "1",
        "readonly": "1",
    }
    # readonly is a setting like any other: a request's session ends with the request.
    assert engine_settings(query, frozenset({"max_threads", "readonly"})) == {
        "max_threads": "2",
        "readonly": "1",
    }


def test_speaks_clickhouse_http(chdb_server: ChdbServer) -> None:
    base = f"http://{chdb_server.host}:{chdb_server.port}"
    with urllib.request.urlopen(f"{base}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
    client = clickhouse_connect.get_client(host=chdb_server.host, port=chdb_server.port)
    client.command("CREATE DATABASE d")
    client.command("CREATE TABLE d.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    rows = [[i, f"v'{i}\t"] for i in range(2000)]
    client.insert("t", rows, column_names=["n", "s"], database="d")  # Native, lz4-compressed
    client.raw_insert("d.t", ["n", "s"], b"5000\tplain\n", fmt="TabSeparated")
    assert client.command("SELECT count() FROM d.t") == 2001
    got = client.query(
        "SELECT s FROM {db:Identifier}.t WHERE n = {n:UInt32}", parameters={"db": "d", "n": 7}
    ).result_rows
    assert got == [("v'7\t",)]
    # Errors arrive as ClickHouse sends them: the code in a header, the message in the body.
    req = urllib.request.Request(f"{base}/?query=SELECT+*+FROM+d.missing")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404
    assert err.value.headers["X-ClickHouse-Exception-Code"] == "60"
    assert err.value.read().decode().startswith("Code: 60. DB::Exception:")


def test_sink_over_http_counts_exactly_and_rides_out_a_restart(chdb_server: ChdbServer) -> None:
    """The sink against a ClickHouse *server*: migrations, inserts, the views; then the server
    goes away mid-write and comes back on the same data directory."""
    target = ClickHouseTarget.parse(chdb_server.url("opens"), "opens")

    def open_client() -> Any:
        client = connect(target)
        apply_migrations(client, target.database)
        return client

    metrics = Metrics()
    sink = ClickHouseSink(open_client, target.database, metrics, max_backoff=0.5)
    rnd = random.Random(41)
    hits = generate(rnd, 3000, ["c1", "c2", "c3"])
    first, second = hits[:2000], hits[1500:]  # overlapping: a replay across the outage

    async def go() -> None:
        await sink.write(first)
        await asyncio.to_thread(chdb_server.stop)
        pending = asyncio.create_task(sink.write(second))
        while metrics.sink_failures._value.get() < 3:  # connection refused, retried
            assert not pending.done(), "the write cannot succeed while the server is down"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(chdb_server.start)
        await asyncio.to_thread(chdb_server.wait_healthy, 60)
        await asyncio.wait_for(pending, 120)

    try:
        asyncio.run(go())
    finally:
        sink.close()
    assert metrics.sink_failures._value.get() >= 3
    assert metrics.sink_rows._value.get() == len(first) + len(second)
    client = clickhouse_connect.get_client(host=chdb_server.host, port=chdb_server.port)
    check(client, "opens", hits)
