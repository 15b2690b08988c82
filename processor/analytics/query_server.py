"""A read-only ClickHouse-compatible HTTP endpoint, plus the dashboard page.

Serves ClickHouse's HTTP interface (``/?query=``, ``default_format``, a trailing ``FORMAT``,
``database``, ``/ping``) so clickhouse-connect, curl and Grafana's ClickHouse data source work
unchanged against the embedded default, whose data directory only this process may open.
Each query is checked by ``readonly.refusal`` before it runs (one reading statement, no
file/network table functions); anything else is refused with ClickHouse's READONLY code 164.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from processor.analytics.readonly import refusal

log = logging.getLogger(__name__)

_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
_CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
}
DASHBOARD_PATH = "/dashboard"
STATIC = ("index.html", "dashboard.js", "dashboard.css")


_ESCAPED = re.compile(r"\\(.)", re.S)


def http_params(query: Any) -> dict[str, str]:
    """``param_<name>`` URL values (server-side bound parameters), unescaped: the client escaped
    them for ClickHouse's text format, and the backend's client will escape them again."""
    return {
        k.removeprefix("param_"): _ESCAPED.sub(r"\1", v)
        for k, v in query.items()
        if k.startswith("param_")
    }


class QueryBackend(Protocol):
    def execute(
        self, sql: str, fmt: str | None, database: str | None, params: dict[str, str]
    ) -> bytes: ...


class ClientBackend:
    """Runs raw queries on a clickhouse-connect client (chDB or HTTP), one at a time."""

    def __init__(self, client: Any, default_database: str) -> None:
        self.client = client
        self.default_database = default_database

    def execute(
        self, sql: str, fmt: str | None, database: str | None, params: dict[str, str]
    ) -> bytes:
        self.client.database = database or self.default_database
        data: bytes = self.client.raw_query(sql, parameters=params or None, fmt=fmt)
        return data


def _error(status: int, code: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=f"Code: {code}. DB::Exception: {message}\n",
        headers={"X-ClickHouse-Exception-Code": str(code)},
    )


def _exception_code(text: str) -> int:
    m = re.search(r"Code: (\d+)", text)
    return int(m.group(1)) if m else 1000


def build_app(backend: QueryBackend) -> web.Application:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-endpoint")

    async def query(request: web.Request) -> web.StreamResponse:
        body = (
            (await request.read()).decode("utf-8", errors="replace")
            if request.can_read_body
            else ""
        )
        sql = " ".join(p for p in (request.query.get("query", ""), body) if p.strip()).strip()
        if not sql:
            if request.method == "GET":
                raise web.HTTPFound(location=DASHBOARD_PATH)
            return _error(400, 62, "empty query")
        if reason := refusal(sql):
            return _error(403, 164, f"this endpoint is read-only: {reason}. (READONLY)")
        clause = _FORMAT_CLAUSE.search(sql)
        fmt = clause.group(1) if clause else request.query.get("default_format", "TabSeparated")
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                pool,
                backend.execute,
                sql,
                None if clause else fmt,
                request.query.get("database"),
                http_params(request.query),
            )
        except Exception as exc:
            text = str(exc)
            code = _exception_code(text)
            log.info("query refused or failed (code %d): %s", code, text[:200])
            return _error(500, code, text)
        return web.Response(
            body=data,
            headers={
                "Content-Type": _CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8"),
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Query-Id": request.query.get("query_id") or str(uuid.uuid4()),
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "cloudfront-opens",
                "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "read_bytes": "0"}),
            },
        )

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC:
            raise web.HTTPNotFound
        data = resources.files("processor.analytics").joinpath("dashboard", name).read_bytes()
        ctype = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[
            name.rsplit(".", 1)[1]
        ]
        return web.Response(body=data, content_type=ctype, charset="utf-8")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    app.router.add_get("/ping", ping)
    app.router.add_get("/dashboard", static)
    app.router.add_get("/dashboard/{name}", static)

    async def close_pool(_: web.Application) -> None:
        pool.shutdown(wait=False)

    app.on_cleanup.append(close_pool)
    return app


async def serve(backend: QueryBackend, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(backend), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
