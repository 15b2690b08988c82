"""A read-only ClickHouse-compatible HTTP endpoint, plus the dashboard page.

Serves ClickHouse's HTTP interface (``/?query=``, ``default_format``, a trailing ``FORMAT``,
``database``, ``param_<name>``, ``/ping``) so clickhouse-connect, curl and Grafana's ClickHouse
data source work unchanged against the embedded default, whose data directory only this
process may open. Read-only and the limits are ClickHouse's own (``query_policy``, one session
per request in ``query_backends``); who may ask is ``web_guard``'s. The event loop only moves
bytes: parsing and running queries happen in the engine, off the loop.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from processor.analytics.query_backends import Answer, QueryBackend, QueryError, ReadRequest
from processor.analytics.web_guard import Guard, is_loopback
from processor.errors import OpensError

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 1 << 20  # a reading query; ClickHouse's own max_query_size is 256 KiB
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
    "CSVWithNames": "text/csv; charset=UTF-8",
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "RowBinaryWithNamesAndTypes": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "Parquet": "application/octet-stream",
}
_STATUS = {
    164: 403,
    202: 503,
    62: 400,
    47: 400,
    46: 400,
    36: 400,
    27: 400,
    73: 400,
    60: 404,
    81: 404,
    159: 504,
    241: 507,
}
_BODY_ENCODINGS = frozenset({"identity", "gzip", "deflate", "br", "zstd"})  # aiohttp decodes these
DASHBOARD_PATH = "/dashboard"
STATIC = ("index.html", "dashboard.js", "dashboard.css")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


def _error(status: int, code: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=f"Code: {code}. DB::Exception: {message}\n",
        headers={"X-ClickHouse-Exception-Code": str(code)},
    )


def _read_request(request: web.Request, body: str) -> ReadRequest | web.Response:
    q = request.query
    sql = "\n".join(p for p in (q.get("query", ""), body) if p.strip()).strip()
    database = q.get("database") or request.headers.get("X-ClickHouse-Database") or None
    fmt = q.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated"
    if database is not None and (not _IDENT.match(database) or database == "system"):
        # system is refused as a default database: its private tables are judged by name.
        return _error(400, 81, f"invalid database name {database[:64]!r}")
    if not _IDENT.match(fmt):
        return _error(400, 73, f"invalid format name {fmt[:64]!r}")
    params = {k.removeprefix("param_"): v for k, v in q.items() if k.startswith("param_")}
    return ReadRequest(sql=sql, database=database, default_format=fmt, params=params)


def _headers(request: web.Request, answer: Answer) -> dict[str, str]:
    return {
        "Content-Type": _CONTENT_TYPES.get(answer.fmt, "text/plain; charset=UTF-8"),
        "X-ClickHouse-Format": answer.fmt,
        "X-ClickHouse-Query-Id": str(uuid.uuid4()),
        "X-ClickHouse-Timezone": "UTC",
        "X-ClickHouse-Server-Display-Name": "cloudfront-opens",
        "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "read_bytes": "0"}),
        "Cache-Control": "no-store",
        **answer.headers,
    }


async def _respond(request: web.Request, answer: Answer) -> web.StreamResponse:
    try:
        resp = web.StreamResponse(headers=_headers(request, answer))
        await resp.prepare(request)
        async for chunk in answer.chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await answer.chunks.aclose()  # also when the client went away mid-answer
        answer.release()


def _guard_middleware(guard: Guard) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resp: web.StreamResponse
        refusal = guard.refusal(request.headers, request.query)
        if refusal and not (request.path == "/ping" and refusal[0] == 401):
            status, reason = refusal
            log.info("query endpoint: refused %s %s: %s", request.method, request.path, reason)
            resp = _error(status, 516 if status == 401 else 497, reason)
            if status == 401:
                resp.headers["WWW-Authenticate"] = 'Basic realm="cloudfront-opens"'
        else:
            resp = await handler(request)
        return resp

    return middleware


def build_app(backend: QueryBackend, guard: Guard) -> web.Application:
    async def query(request: web.Request) -> web.StreamResponse:
        encoding = request.headers.get("Content-Encoding", "identity").lower()
        if encoding not in _BODY_ENCODINGS:
            return _error(400, 48, f"unsupported Content-Encoding {encoding[:32]!r}")
        try:
            raw = await request.read() if request.can_read_body else b""
        except web.HTTPException:
            raise  # 413: the body is larger than a query may be
        except Exception as exc:
            return _error(400, 27, f"cannot read the request body: {str(exc)[:200]}")
        parsed = _read_request(request, raw.decode("utf-8", errors="replace"))
        if isinstance(parsed, web.Response):
            return parsed
        if not parsed.sql:
            if request.method == "GET":
                raise web.HTTPFound(location=DASHBOARD_PATH)
            return _error(400, 62, "empty query")
        try:
            answer = await backend.execute(parsed)
        except QueryError as exc:
            log.info("query refused or failed (code %d): %s", exc.code, exc.message[:200])
            message = exc.message.removeprefix(f"Code: {exc.code}. DB::Exception: ")
            return _error(_STATUS.get(exc.code, 500), exc.code, message)
        return await _respond(request, answer)

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

    app = web.Application(client_max_size=MAX_QUERY_BYTES, middlewares=[_guard_middleware(guard)])

    async def security_headers(_: web.Request, resp: web.StreamResponse) -> None:
        for key, value in _SECURITY_HEADERS.items():
            resp.headers.setdefault(key, value)

    app.on_response_prepare.append(security_headers)
    app.router.add_route("GET", "/", query)
    app.router.add_route("POST", "/", query)
    app.router.add_get("/ping", ping)
    app.router.add_get("/dashboard", static)
    app.router.add_get("/dashboard/{name}", static)

    async def close_backend(_: web.Application) -> None:
        await backend.close()

    app.on_cleanup.append(close_backend)
    return app


def check_exposure(guard: Guard) -> None:
    """Refuse to serve beyond loopback without authentication."""
    if not is_loopback(guard.bind_host) and not guard.auth_required:
        msg = (
            f"the query endpoint would listen on {guard.bind_host} without authentication; "
            "set OPENS_QUERY_USER and OPENS_QUERY_PASSWORD, or bind it to 127.0.0.1"
        )
        raise OpensError(msg)


async def serve(backend: QueryBackend, guard: Guard, port: int) -> web.AppRunner:
    check_exposure(guard)
    # handler_cancellation: a client that disconnects cancels its handler, which kills the query.
    runner = web.AppRunner(build_app(backend, guard), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, guard.bind_host, port).start()
    return runner
