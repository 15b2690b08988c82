"""A ClickHouse-compatible HTTP server over chDB, for development, tests and fault drills.

There is no ClickHouse server binary on a development machine, and chDB lets one process own a
data directory. This module is that process: ``python -m processor.devstack.chdb_server --data
DIR --port N`` serves enough of ClickHouse's HTTP interface for clickhouse-connect's HTTP
client (and curl) so the worker can write to "a ClickHouse server" that a test can stop, kill
and start again on the same data directory. ``ChdbServer`` starts and stops it by PID like the
other stack components.

What it speaks:

- ``GET /ping`` → ``Ok.``; queries as ``GET /?query=…`` or ``POST /`` (the ``query`` parameter,
  then the body), results in the statement's ``FORMAT`` or ``default_format`` (TabSeparated).
- ``INSERT … FORMAT <fmt>`` followed by data (Native, RowBinary, TSV, JSONEachRow, …): the data
  is written to a temp file and loaded with ``INSERT … FROM INFILE``, chDB's own reader.
- Request bodies compressed with ``Content-Encoding`` lz4/zstd/gzip/deflate are decompressed;
  responses are never compressed (a client that asked for compression reads them as identity).
- ``database`` and ``default_format`` parameters; ``param_<name>`` bound parameters; other
  query-string settings are applied for that one request when the engine knows them, and
  ignored (logged) otherwise, as are the HTTP transport ones (session, query id, compression).
- Errors as ClickHouse sends them: ``Code: N. DB::Exception: …`` with the
  ``X-ClickHouse-Exception-Code`` header and a 4xx/5xx status.

Not a security boundary: no authentication (credentials are accepted and ignored) and no
sessions beyond one request; bind it to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import re
import sys
import time
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from processor.devstack.process import ManagedProcess, port_is_free
from processor.errors import StackError

log = logging.getLogger(__name__)

COMPONENT = "chdb-server"
MODULE = "processor.devstack.chdb_server"

# Query-string keys that shape the HTTP exchange, not the query: never sent to the engine.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "role",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)
_INSERT_FORMAT = re.compile(
    rb"^\s*(?P<head>INSERT\s+INTO\s+.+?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*(?:\r?\n)?",
    re.I | re.S,
)
_SETTINGS = re.compile(rb"\s+SETTINGS\s+", re.I)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+", re.I)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
_CODE = re.compile(r"Code:\s*(\d+)")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_BAD_REQUEST = frozenset({27, 36, 42, 43, 46, 47, 62, 115, 117})  # the client's mistake
_NOT_FOUND = frozenset({60, 81})  # unknown table / database
_UNSUPPORTED = 48  # NOT_IMPLEMENTED
_CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "RowBinaryWithNamesAndTypes": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "Parquet": "application/octet-stream",
}


class ClickHouseHTTPError(Exception):
    """A failure reported the way ClickHouse reports it: a numeric ``code`` and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        if self.code in _BAD_REQUEST:
            return 400
        if self.code in _NOT_FOUND:
            return 404
        if self.code == _UNSUPPORTED:
            return 501
        return 500


@dataclass(frozen=True)
class InsertData:
    """``INSERT INTO <target> FORMAT <fmt>`` split from the data that followed it."""

    target: str  # table and optional column list
    settings: str  # a trailing ``SETTINGS …`` clause, or ""
    fmt: str
    data: bytes


def split_insert(text: bytes) -> InsertData | None:
    """The data-carrying form of INSERT, or ``None`` for anything else (including VALUES)."""
    m = _INSERT_FORMAT.match(text)
    if m is None:
        return None
    head = m.group("head")
    settings = b""
    parts = _SETTINGS.split(head, maxsplit=1)
    if len(parts) == 2:
        head, settings = parts[0], b"SETTINGS " + parts[1]
    target = _INSERT_INTO.sub("", head.decode("utf-8")).strip()
    return InsertData(target, settings.decode("utf-8"), m.group("fmt").decode(), text[m.end() :])


def decompress(body: bytes, encoding: str | None) -> bytes:
    """Undo the request's ``Content-Encoding`` (clickhouse-connect compresses insert bodies)."""
    if not encoding or encoding == "identity" or not body:
        return body
    try:
        if encoding == "lz4":
            from clickhouse_connect.driver.compression import _require_lz4

            return bytes(_require_lz4().decompress(body))  # type: ignore[no-untyped-call]
        if encoding == "zstd":
            from clickhouse_connect.driver.compression import _zstd_decompress

            return bytes(_zstd_decompress(body))
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except Exception as exc:
        msg = f"cannot decompress the request body ({encoding}): {exc}"
        raise ClickHouseHTTPError(_UNSUPPORTED, msg) from None
    msg = f"unsupported Content-Encoding {encoding!r}"
    raise ClickHouseHTTPError(_UNSUPPORTED, msg)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Answer:
    body: bytes
    fmt: str
    summary: dict[str, str]


class Engine:
    """The chDB connection of this process; every call runs on the one thread that owns it."""

    def __init__(self, path: Path) -> None:
        import chdb

        path.mkdir(parents=True, exist_ok=True)
        # Typed in some chdb 4.4 builds, untyped in others: call it through Any either way.
        self._connect: Any = cast(Any, chdb.connect)
        self.path = str(path)
        self.conn = self._connect(self.path)
        self.tmp = path / "http-inserts"
        self.tmp.mkdir(exist_ok=True)
        rows = self._raw("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = rows[0], rows[1]
        names = self._raw("SELECT name FROM system.settings", "TabSeparated").bytes().decode()
        self.known_settings = frozenset(names.split())

    def _raw(
        self, sql: str, fmt: str, params: dict[str, str] | None = None, conn: Any = None
    ) -> Any:
        try:
            return (conn or self.conn).query(sql, fmt, params=params or {})
        except Exception as exc:
            text = str(exc).strip()
            m = _CODE.search(text)
            raise ClickHouseHTTPError(int(m.group(1)) if m else 1000, text) from None

    def execute(
        self,
        text: bytes,
        *,
        database: str | None,
        default_format: str,
        params: dict[str, str],
        settings: dict[str, str],
    ) -> Answer:
        # A session per request, as a server gives one per HTTP query: its settings (readonly
        # included, which can never be unset) die with it.
        conn = self._connect(self.path)
        try:
            self._raw(
                f"USE `{(database or 'default').replace('`', '')}`", "TabSeparated", conn=conn
            )
            # A server has no Python objects to read: chDB's python() table function stays off.
            self._raw("SET allow_python_table_function = 0", "TabSeparated", conn=conn)
            for key, value in settings.items():
                self._raw(f"SET {key} = {_quote(value)}", "TabSeparated", conn=conn)
            return self._statement(conn, text, default_format, params)
        finally:
            conn.close()

    def _statement(
        self, conn: Any, text: bytes, default_format: str, params: dict[str, str]
    ) -> Answer:
        insert = split_insert(text)
        if insert is not None:
            return self._insert(conn, insert)
        sql = text.decode("utf-8", errors="replace").strip()
        if not sql:
            raise ClickHouseHTTPError(62, "Empty query. (SYNTAX_ERROR)")
        clause = _TRAILING_FORMAT.search(sql)
        fmt = clause.group(1) if clause else default_format
        result = self._raw(sql, fmt, params, conn=conn)
        return Answer(result.bytes() or b"", fmt, _summary(result))

    def _insert(self, conn: Any, insert: InsertData) -> Answer:
        if not insert.data.strip():
            return Answer(b"", "TabSeparated", {"written_rows": "0", "written_bytes": "0"})
        path = self.tmp / f"{uuid.uuid4().hex}.{insert.fmt.lower()}"
        path.write_bytes(insert.data)
        try:
            sql = (
                f"INSERT INTO {insert.target} FROM INFILE {_quote(str(path))} "
                f"{insert.settings} FORMAT {insert.fmt}"
            )
            result = self._raw(sql, "TabSeparated", conn=conn)
        finally:
            path.unlink(missing_ok=True)
        return Answer(b"", "TabSeparated", _summary(result))

    def close(self) -> None:
        self.conn.close()


def _summary(result: Any) -> dict[str, str]:
    return {
        "read_rows": str(result.rows_read()),
        "read_bytes": str(result.bytes_read()),
        "written_rows": str(result.rows_written()),
        "written_bytes": str(result.bytes_written()),
    }


def engine_settings(query: Any, known: frozenset[str]) -> dict[str, str]:
    """Query-string settings to apply for one request; transport keys and unknown names are
    dropped (logged), the way a lenient server would."""
    out: dict[str, str] = {}
    for key, value in query.items():
        if key in TRANSPORT_PARAMS or key.startswith("param_"):
            continue
        if key in known:
            out[key] = value
        else:
            log.info("ignoring unknown setting %s in the query string", key)
    return out


def build_app(engine: Engine) -> Any:
    from aiohttp import web

    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chdb")

    def error(exc: ClickHouseHTTPError) -> web.Response:
        text = (
            exc.message
            if exc.message.startswith("Code:")
            else (f"Code: {exc.code}. DB::Exception: {exc.message}")
        )
        return web.Response(
            status=exc.status,
            text=f"{text} (version {engine.version})\n",
            headers={"X-ClickHouse-Exception-Code": str(exc.code)},
        )

    async def query(request: web.Request) -> web.Response:
        body = await request.read() if request.can_read_body else b""
        q = request.query
        query_id = q.get("query_id") or str(uuid.uuid4())
        try:
            body = decompress(body, request.headers.get("Content-Encoding"))
            param = q.get("query", "").encode()
            text = param + b"\n" + body if param and body else (param or body)
            answer = await asyncio.get_running_loop().run_in_executor(
                pool,
                lambda: engine.execute(
                    text,
                    database=q.get("database"),
                    default_format=q.get("default_format", "TabSeparated"),
                    params={k[6:]: v for k, v in q.items() if k.startswith("param_")},
                    settings=engine_settings(q, engine.known_settings),
                ),
            )
        except ClickHouseHTTPError as exc:
            log.info("query %s failed (code %d): %s", query_id, exc.code, exc.message[:300])
            return error(exc)
        return web.Response(
            body=answer.body,
            headers={
                "Content-Type": _CONTENT_TYPES.get(answer.fmt, "text/plain; charset=UTF-8"),
                "X-ClickHouse-Format": answer.fmt,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": engine.timezone,
                "X-ClickHouse-Server-Display-Name": "chdb-server",
                "X-ClickHouse-Summary": json.dumps(answer.summary),
            },
        )

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def shutdown(_: web.Application) -> None:
        pool.shutdown(wait=True)  # let a running insert finish before the engine closes
        engine.close()

    # Bodies stay as sent: lz4/zstd are undone here, and aiohttp must not undo gzip first.
    app = web.Application(
        client_max_size=512 * 1024 * 1024, handler_args={"auto_decompress": False}
    )
    app.router.add_get("/ping", ping)
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    app.on_cleanup.append(shutdown)
    return app


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    engine = Engine(args.data.resolve())
    log.info("chDB %s on %s serving http://%s:%d", engine.version, args.data, args.host, args.port)
    # run_app turns SIGTERM/SIGINT into a graceful stop: in-flight requests end, then cleanup.
    web.run_app(build_app(engine), host=args.host, port=args.port, access_log=None, print=None)


@dataclass(frozen=True)
class ChdbServer:
    """One server process: its PID file and log under ``home``, its data in ``data_dir``."""

    home: Path
    data_dir: Path
    host: str
    port: int

    def url(self, database: str = "opens") -> str:
        """An ``OPENS_CLICKHOUSE_URL`` for this server."""
        return f"http://{self.host}:{self.port}/{database}"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(
            COMPONENT, self.home / "chdb-server.pid", marker=f"{MODULE} --data {self._data}"
        )

    @property
    def _data(self) -> Path:
        return self.data_dir.resolve()

    @property
    def log_file(self) -> Path:
        return self.home / "chdb-server.log"

    def start(self) -> int:
        """Start the server (harmless when it already runs); returns its PID."""
        if (pid := self.process.pid()) is not None:
            return pid
        if not port_is_free(self.host, self.port):
            msg = f"port {self.port} on {self.host} is already in use"
            raise StackError(msg, component=COMPONENT, hint="stop what uses it or pick a port")
        argv = [
            sys.executable,
            "-m",
            MODULE,
            "--data",
            str(self._data),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        return self.process.start(argv, log=self.log_file)

    def healthy(self) -> bool:
        try:
            url = f"http://{self.host}:{self.port}/ping"  # loopback, built here
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.exited_early():
                msg = "the chDB server exited during start-up"
                raise StackError(msg, component=COMPONENT, hint=f"see {self.log_file}")
            if self.healthy():
                return
            time.sleep(0.1)
        msg = f"the chDB server did not answer /ping within {timeout:.0f}s"
        raise StackError(msg, component=COMPONENT, hint=f"see {self.log_file}")

    def stop(self) -> bool:
        """SIGTERM (graceful: in-flight requests finish), SIGKILL after 20 s."""
        return self.process.stop(timeout=20)

    def kill(self) -> bool:
        """SIGKILL: the crash case. The OS releases chDB's directory lock with the process."""
        return self.process.kill()


if __name__ == "__main__":
    main()
