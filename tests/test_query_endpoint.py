"""The read-only ClickHouse-compatible endpoint, attacked and used the way clients use it.

Run against the embedded engine (a reader session per request on this process's chDB) and
against a ClickHouse server over HTTP (the chDB stand-in server), with the same attacks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.analytics.query_backends import ChdbReaders, QueryBackend, ServerReaders
from processor.analytics.query_policy import ReaderLimits
from processor.analytics.query_server import check_exposure, serve
from processor.analytics.web_guard import Guard
from processor.devstack.chdb_server import ChdbServer
from processor.devstack.process import free_port
from processor.errors import OpensError
from processor.sinks.clickhouse.client import ClickHouseTarget, connect
from processor.sinks.clickhouse.schema import apply_migrations
from tests.factories import generate, write

pytestmark = pytest.mark.integration

LIMITS = ReaderLimits(
    max_execution_seconds=2,
    max_memory_bytes=200 << 20,
    max_result_rows=100_000,
    max_result_bytes=64 << 20,
    max_threads=1,
)


class Endpoint:
    def __init__(self, backend: QueryBackend, guard: Guard) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            runner = self.loop.run_until_complete(serve(backend, guard, self.port))
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def get(
        self, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        url = f"{self.url}/?{urllib.parse.urlencode(params)}"
        return _send(urllib.request.Request(url, headers=headers or {}))

    def post(
        self, body: str, headers: dict[str, str] | None = None, **params: str
    ) -> tuple[int, bytes]:
        url = f"{self.url}/?{urllib.parse.urlencode(params)}"
        return _send(urllib.request.Request(url, data=body.encode(), headers=headers or {}))


def _send(req: urllib.request.Request, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def seeded(chdb_client: Any, ch_database: str) -> str:
    apply_migrations(chdb_client, ch_database)
    write(chdb_client, ch_database, generate(__import__("random").Random(8), 50, ["alpha", "beta"]))
    return ch_database


@pytest.fixture(params=["embedded", "server"])
def ep(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Endpoint, Any, str]]:
    """(endpoint, a writer client on the same data, database) for both kinds of backend."""
    if request.param == "embedded":
        client = request.getfixturevalue("chdb_client")
        db = request.getfixturevalue("seeded")
        backend: QueryBackend = ChdbReaders(client.path, db, LIMITS, concurrency=2)
        endpoint = Endpoint(backend, Guard("127.0.0.1"))
        yield endpoint, client, db
        endpoint.stop()
        return
    srv = ChdbServer(tmp_path / "home", tmp_path / "data", "127.0.0.1", free_port())
    srv.start()
    try:
        srv.wait_healthy(60)
        client = clickhouse_connect.get_client(host="127.0.0.1", port=srv.port)
        db = "opens"
        apply_migrations(client, db)
        write(client, db, generate(__import__("random").Random(8), 50, ["alpha", "beta"]))
        endpoint = Endpoint(
            ServerReaders(f"http://127.0.0.1:{srv.port}/", db, LIMITS), Guard("127.0.0.1")
        )
        yield endpoint, client, db
        endpoint.stop()
        client.close()
    finally:
        srv.stop()


def _state(client: Any, db: str) -> tuple[Any, ...]:
    tables = client.query(
        "SELECT database, name FROM system.tables "
        "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY 1, 2"
    ).result_rows
    return tuple(tables), client.command(f"SELECT count() FROM {db}.hits")


def test_clients_read_the_views(ep: tuple[Endpoint, Any, str]) -> None:
    endpoint, client, db = ep
    remote = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port, database=db)
    got = remote.query("SELECT campaign, unique_opens FROM campaign_summary ORDER BY campaign")
    local = client.query(
        f"SELECT campaign, unique_opens FROM {db}.campaign_summary ORDER BY campaign"
    )
    assert got.result_rows == local.result_rows
    assert [r[0] for r in got.result_rows] == ["alpha", "beta"]
    hostile = "'; DROP TABLE hits; --\\\t\n"
    n = remote.command(
        "SELECT count() FROM campaign_summary WHERE campaign = {c:String}",
        parameters={"c": hostile},
    )
    assert n == 0
    assert remote.query("SELECT {c:String}", parameters={"c": hostile}).result_rows == [(hostile,)]
    assert remote.ping()
    # curl: GET with default_format, POST with a FORMAT clause, the dashboard page.
    status, body = endpoint.get(
        {
            "query": f"SELECT campaign FROM {db}.campaign_summary ORDER BY 1",
            "default_format": "JSON",
        }
    )
    assert status == 200 and [r["campaign"] for r in json.loads(body)["data"]] == ["alpha", "beta"]
    status, body = endpoint.post(f"SELECT count() FROM {db}.first_opens FORMAT CSV")
    assert status == 200 and int(body) > 0
    status, body = endpoint.get({})
    assert status == 200 and b"<title>" in body  # / without a query redirects to the dashboard
    # Grafana's HTTP data source: POST, JSON, database header, its own settings ignored.
    status, body = endpoint.post(
        "SELECT campaign, opens FROM campaign_summary ORDER BY campaign FORMAT JSON",
        {"X-ClickHouse-Database": db, "Content-Type": "text/plain"},
        max_execution_time="500",
    )
    assert status == 200 and len(json.loads(body)["data"]) == 2


ATTACKS = [
    "DROP TABLE hits",
    "CREATE TABLE evil (a Int8) ENGINE = Memory",
    "INSERT INTO hits (request_id) VALUES ('x')",
    "SELECT 1; DROP TABLE hits",
    "SELECT 1; CREATE TABLE evil (a Int8) ENGINE = Memory",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
    "SELECT * FROM FiLe('/proc/self/environ', 'LineAsString')",
    "SELECT file('/proc/self/environ')",
    "SELECT `file`('/etc/passwd')",
    "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
    "SELECT * FROM `url`('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT * FROM filesystem('/etc')",
    "SELECT * FROM executable('id', 'TSV', 'x String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV', 'x String')",
    "SELECT * FROM python('x')",
    "SELECT * FROM eval('SELECT 1')",
    "/* /* */ SELECT ' */ CREATE TABLE evil (a Int8) ENGINE = Memory -- '",
    "/* /* */ SELECT ' */ INSERT INTO hits (request_id) VALUES ('x') -- '",
    "/* /* */ SELECT ' */ DROP TABLE hits -- '",
    "/* /* */ SELECT ' */ SET max_result_rows = 1 -- '",
    "SET max_result_rows = 1",
    "SET readonly = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT 1 SETTINGS max_execution_time = 0",
    "SYSTEM DROP DNS CACHE",
    "ALTER TABLE hits DELETE WHERE 1",
    "OPTIMIZE TABLE hits FINAL",
    "KILL QUERY WHERE 1",
    "TRUNCATE TABLE hits",
    "DESCRIBE file('/etc/passwd', 'CSVWithNames')",
    "DESCRIBE TABLE url('http://127.0.0.1:9/x', 'CSV')",
    "DESC (SELECT file('/etc/passwd'))",
    "EXPLAIN SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')",
    "EXPLAIN SYNTAX SELECT file('/etc/passwd')",
    "SELECT query FROM system.processes",
    "SELECT * FROM `system`.`query_log`",
    "SHOW PROCESSLIST",
    "SELECT * FROM merge('system', '^proc')",
    "SELECT * FROM system.stack_trace",
]


def _outfile_attacks(target: Path) -> list[str]:
    t = str(target)
    return [
        f"SELECT 1 INTO OUTFILE '{t}'",
        f"SELECT 1 INTO OUTFILE '{t}' TRUNCATE",
        f"SELECT 1 INTO OUTFILE '{t}' AND STDOUT FORMAT CSV",
        f"SELECT 1 INTO OUTFILE '{t}' COMPRESSION 'gzip'",
        f"SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '{t}'",
        f"EXPLAIN SELECT 1 INTO OUTFILE '{t}'",
        f"SHOW TABLES INTO OUTFILE '{t}'",
        f"/* /* */ SELECT ' */ SELECT 1 INTO OUTFILE '{t}' -- '",
        f"SELECT 1; SELECT 2 INTO OUTFILE '{t}'",
    ]


def test_every_attack_is_refused_and_changes_nothing(
    ep: tuple[Endpoint, Any, str], tmp_path: Path
) -> None:
    endpoint, client, db = ep
    before = _state(client, db)
    target = tmp_path / "written-by-attacker.txt"
    listener = socket.create_server(("127.0.0.1", 0))  # server-side requests would land here
    listener.setblocking(False)
    port = listener.getsockname()[1]
    for sql in ATTACKS + _outfile_attacks(target):
        sql = sql.replace("127.0.0.1:9", f"127.0.0.1:{port}")
        status, body = endpoint.post(sql, database=db)
        assert status >= 400, (sql, body[:300])
        assert b"root:" not in body and b"OPENS_" not in body, sql
        assert not target.exists(), sql
    assert _state(client, db) == before
    with pytest.raises(BlockingIOError):
        listener.accept()  # no attack made the engine connect anywhere
    listener.close()
    # No setting stuck: the next request has the endpoint's own limits.
    status, body = endpoint.post(
        "SELECT getSetting('max_result_rows'), getSetting('readonly'), count() FROM numbers(5)"
    )
    assert (status, body.split()) == (200, [b"100000", b"1", b"5"])


def test_limits_are_enforced_by_clickhouse(ep: tuple[Endpoint, Any, str]) -> None:
    endpoint, _, _ = ep
    status, body = endpoint.post("SELECT count() FROM numbers(1000000000000)")
    assert status == 504 and b"TIMEOUT_EXCEEDED" in body
    status, body = endpoint.post("SELECT groupArray(number) FROM numbers(500000000)")
    assert status >= 500 and b"MEMORY_LIMIT_EXCEEDED" in body
    status, body = endpoint.post("SELECT number FROM numbers(1000000)")
    assert status >= 500 and b"TOO_MANY_ROWS" in body
    # The endpoint still answers, and a failed query leaves nothing for the next client.
    status, body = endpoint.post("SELECT 'B'")
    assert (status, body) == (200, b"B\n")


def test_a_disconnected_client_s_query_is_cancelled(chdb_client: Any, seeded: str) -> None:
    slow = ReaderLimits(max_execution_seconds=120, max_threads=1)
    endpoint = Endpoint(
        ChdbReaders(chdb_client.path, seeded, slow, concurrency=1), Guard("127.0.0.1")
    )
    try:
        req = urllib.request.Request(
            endpoint.url + "/", data=b"SELECT count() FROM numbers(10000000000000)"
        )
        with pytest.raises(OSError):
            urllib.request.urlopen(req, timeout=1.0)  # the client gives up and disconnects
        readers = (
            "SELECT count() FROM system.processes "
            "WHERE Settings['log_comment'] LIKE 'opens-reader-%'"
        )
        deadline = time.monotonic() + 30
        while chdb_client.command(readers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert chdb_client.command(readers) == 0
        # Its slot is free again: the one-query endpoint answers the next client.
        status, body = endpoint.post("SELECT 42")
        assert (status, body) == (200, b"42\n")
    finally:
        endpoint.stop()


def test_a_slow_reader_does_not_block_ingestion(chdb_client: Any, seeded: str) -> None:
    endpoint = Endpoint(ChdbReaders(chdb_client.path, seeded, ReaderLimits()), Guard("127.0.0.1"))
    try:
        result: list[tuple[int, bytes]] = []
        reader = threading.Thread(
            target=lambda: result.append(endpoint.post("SELECT sleepEachRow(1) FROM numbers(3)"))
        )
        reader.start()
        time.sleep(0.3)
        before = chdb_client.command(f"SELECT count() FROM {seeded}.hits")
        write(chdb_client, seeded, generate(__import__("random").Random(9), 5, ["gamma"]))
        assert chdb_client.command(f"SELECT count() FROM {seeded}.hits") > before
        assert reader.is_alive()  # the insert finished while the reader was still running
        reader.join(30)
        assert result and result[0][0] == 200
    finally:
        endpoint.stop()


def test_odd_requests_get_clickhouse_errors_not_internals(chdb_client: Any, seeded: str) -> None:
    endpoint = _guarded(chdb_client, seeded, Guard("127.0.0.1"))
    try:
        status, body = endpoint.post("SELECT 1", database="nosuch")
        assert status == 404 and b"Code: 81" in body
        assert endpoint.post("SELECT 1", database="system")[0] == 400
        status, body = endpoint.post("SELECT 1", default_format="DataFrame")
        assert status == 400 and b"UNKNOWN_FORMAT" in body
        status, body = endpoint.post("SELECT '\\xFF'")
        assert status == 400 and b"UTF-8" in body
        bad_gzip = {"Content-Encoding": "gzip"}
        assert endpoint.post("not gzip at all", bad_gzip)[0] == 400
        assert endpoint.post("SELECT 1", {"Content-Encoding": "lz4"})[0] == 400
        assert endpoint.post("SELECT 1") == (200, b"1\n")
    finally:
        endpoint.stop()


def test_the_answer_size_is_capped_whatever_the_format(chdb_client: Any, seeded: str) -> None:
    small = ReaderLimits(max_result_bytes=1 << 20)
    endpoint = Endpoint(ChdbReaders(chdb_client.path, seeded, small), Guard("127.0.0.1"))
    try:
        key = "k" * 2000  # JSONEachRow repeats it on every row: the output outgrows the blocks
        status, body = endpoint.post(
            f"SELECT number AS {key} FROM numbers(5000) FORMAT JSONEachRow"
        )
        assert status == 200 and len(body) < (1 << 20) + 200
        assert body.rstrip().endswith(b"the answer exceeds 1048576 bytes")
    finally:
        endpoint.stop()


def test_a_query_that_ignores_its_kill_keeps_its_slot(chdb_client: Any, seeded: str) -> None:
    """One editDistance call runs for seconds and cannot be interrupted: when its client leaves,
    the slot stays taken until the engine is done, so the endpoint answers 503, never hangs."""
    endpoint = Endpoint(
        ChdbReaders(chdb_client.path, seeded, ReaderLimits(), concurrency=1), Guard("127.0.0.1")
    )
    try:
        slow = (
            b"SELECT editDistance(repeat('a', 60000), repeat('b', 60000 - number)) FROM numbers(2)"
        )
        with pytest.raises(OSError):
            urllib.request.urlopen(
                urllib.request.Request(endpoint.url + "/", data=slow), timeout=0.5
            )
        status, body = endpoint.post("SELECT 1")
        assert status == 503 and b"Code: 202" in body
        deadline = time.monotonic() + 60
        while endpoint.post("SELECT 1")[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert endpoint.post("SELECT 1") == (200, b"1\n")
    finally:
        endpoint.stop()


def _guarded(chdb_client: Any, db: str, guard: Guard) -> Endpoint:
    return Endpoint(ChdbReaders(chdb_client.path, db, LIMITS), guard)


def test_cross_site_and_rebinding_requests_are_refused(chdb_client: Any, seeded: str) -> None:
    endpoint = _guarded(chdb_client, seeded, Guard("127.0.0.1", frozenset({"opens.internal"})))
    try:
        q = {"query": "SELECT 1"}
        assert endpoint.get(q)[0] == 200
        assert endpoint.get(q, {"Host": "opens.internal:8124"})[0] == 200
        assert endpoint.get(q, {"Host": "attacker.example"})[0] == 403  # DNS rebinding
        assert endpoint.get(q, {"Host": "attacker.example"})[0] == 403
        cross = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}
        assert endpoint.post("SELECT 1", cross)[0] == 403  # fetch(no-cors, POST) from elsewhere
        assert endpoint.post("SELECT 1", {"Origin": "null"})[0] == 403
        assert endpoint.get(q, {"Sec-Fetch-Site": "cross-site"})[0] == 403  # <img src=…>
        assert endpoint.get(q, {"Sec-Fetch-Site": "same-site"})[0] == 403  # another local port
        assert endpoint.get(q, {"Sec-Fetch-Site": "cross-site, none"})[0] == 403
        for host in ("evil.example@127.0.0.1", "127.0.0.1/evil", "127.0.0.1:abc", ""):
            assert endpoint.get(q, {"Host": host})[0] in {400, 403}, host
        wrong_scheme = {"Origin": endpoint.url.replace("http:", "https:")}
        assert endpoint.post("SELECT 1", wrong_scheme)[0] == 403
        assert endpoint.post("SELECT 1", {"Origin": ""})[0] == 403
        same = {"Origin": endpoint.url, "Sec-Fetch-Site": "same-origin"}
        assert endpoint.post("SELECT 1", same)[0] == 200  # the dashboard itself
        status, _ = endpoint.get({}, {"Sec-Fetch-Site": "cross-site"})
        assert status == 403  # the dashboard page cannot be framed or fetched cross-site either
    finally:
        endpoint.stop()


def test_authentication_in_clickhouse_s_forms(chdb_client: Any, seeded: str) -> None:
    endpoint = _guarded(chdb_client, seeded, Guard("127.0.0.1", user="analyst", password="s3cr:et"))
    try:
        status, body = endpoint.post("SELECT 1")
        assert status == 401 and b"authentication" in body
        assert (
            endpoint.post("SELECT 1", {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "no"})[0]
            == 401
        )
        basic = base64.b64encode(b"analyst:s3cr:et").decode()
        assert endpoint.post("SELECT 1", {"Authorization": f"Basic {basic}"}) == (200, b"1\n")
        assert (
            endpoint.post(
                "SELECT 1", {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "s3cr:et"}
            )[0]
            == 200
        )
        assert endpoint.post("SELECT 1", user="analyst", password="s3cr:et")[0] == 200
        assert _send(urllib.request.Request(endpoint.url + "/ping")) == (200, b"Ok.\n")
        remote = clickhouse_connect.get_client(
            host="127.0.0.1", port=endpoint.port, username="analyst", password="s3cr:et"
        )
        assert remote.command("SELECT 2") == 2
        # What `opens report` does while the worker holds chDB: credentials in the URL.
        url = f"http://analyst:{urllib.parse.quote('s3cr:et', safe='')}@127.0.0.1:{endpoint.port}"
        assert connect(ClickHouseTarget(url, seeded)).command("SELECT 3") == 3
    finally:
        endpoint.stop()


def test_a_public_bind_needs_authentication() -> None:
    with pytest.raises(OpensError, match="OPENS_QUERY_USER"):
        check_exposure(Guard("0.0.0.0"))
    check_exposure(Guard("0.0.0.0", user="analyst", password="x"))
    check_exposure(Guard("::1"))


FRAGMENTS = st.sampled_from(
    [
        "SELECT",
        " 1",
        "/*",
        "*/",
        "/* /* */",
        "--",
        "\n",
        "'",
        "\\'",
        '"',
        "`",
        ";",
        " ",
        "CREATE TABLE evil (a Int8) ENGINE = Memory",
        "INSERT INTO hits (request_id) VALUES ('x')",
        "DROP TABLE hits",
        "SET max_result_rows = 1",
        "SETTINGS readonly = 0",
        "INTO OUTFILE",
        "'/tmp/opens-hypothesis-outfile'",
        "file(",
        "`file`(",
        "url(",
        "'/etc/passwd'",
        ")",
        "FORMAT JSON",
        "KILL QUERY WHERE 1",
        "EXPLAIN",
        "WITH 1 AS a",
        "TRUNCATE",
        "ALTER",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(FRAGMENTS, min_size=1, max_size=12).map("".join))
def test_generated_hostile_sql_never_writes(chdb_client: Any, seeded: str, sql: str) -> None:
    outfile = Path("/tmp/opens-hypothesis-outfile")
    endpoint = _ENDPOINTS.setdefault(seeded, _guarded(chdb_client, seeded, Guard("127.0.0.1")))
    before = _state(chdb_client, seeded)
    status, body = endpoint.post(sql, database=seeded)
    assert not outfile.exists(), sql
    assert b"root:x:" not in body, sql
    assert _state(chdb_client, seeded) == before, sql
    assert status in {200, 400, 403, 404, 500}, (sql, status)
    status, body = endpoint.post("SELECT getSetting('max_result_rows')")
    assert (status, body) == (200, b"100000\n")


_ENDPOINTS: dict[str, Endpoint] = {}


@pytest.fixture(autouse=True)
def _stop_shared_endpoints() -> Iterator[None]:
    yield
    while _ENDPOINTS:
        _ENDPOINTS.popitem()[1].stop()
