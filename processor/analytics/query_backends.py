"""Where the query endpoint runs a reader's query: the embedded engine, or a ClickHouse server.

Every request gets a session of its own, so nothing a query leaves behind (a setting, a
database, a half-read result) can reach the next request, and a slow reader never holds a
lock that ingestion waits on. The session is made read-only by ClickHouse (``query_policy``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from processor.analytics.query_policy import (
    ReaderLimits,
    ast_probe,
    ast_refusal,
    text_param,
    trailing_format,
)

log = logging.getLogger(__name__)

_CODE = re.compile(r"Code: (\d+)")
READONLY_CODE = 164
_BUSY = "too many simultaneous queries on the read-only endpoint; retry shortly"
TOO_MANY_QUERIES_CODE = 202


class QueryError(Exception):
    """A query ClickHouse (or the endpoint's policy) refused, with ClickHouse's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _as_query_error(exc: Exception) -> QueryError:
    text = str(exc).strip()
    m = _CODE.search(text)
    return QueryError(int(m.group(1)) if m else 1000, text)


def _check(ast: str) -> None:
    if reason := ast_refusal(ast):
        raise QueryError(READONLY_CODE, f"this endpoint is read-only: {reason}. (READONLY)")


@dataclass(frozen=True)
class ReadRequest:
    sql: str
    database: str | None
    default_format: str
    # ``{name:Type}`` values as the client sent them: in ClickHouse's escaped text format.
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A finished result, or (from a server) one still streaming in ``chunks``."""

    fmt: str
    body: bytes = b""
    chunks: AsyncGenerator[bytes, None] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class QueryBackend(Protocol):
    async def execute(self, req: ReadRequest) -> Answer: ...

    async def close(self) -> None: ...


class ChdbReaders:
    """Reader sessions on this process's embedded engine: a new chDB connection per request.

    A query whose client goes away is killed through a control connection by its
    ``log_comment`` tag (chDB has no per-query id a caller can set)."""

    def __init__(
        self, path: str, database: str, limits: ReaderLimits, concurrency: int = 4
    ) -> None:
        import chdb

        self._connect: Any = chdb.connect
        self.path = path if path.startswith(":memory:") else os.path.realpath(path)
        self.database = database
        self.limits = limits
        self.slots = asyncio.Semaphore(concurrency)
        self.pool = ThreadPoolExecutor(max_workers=concurrency + 1, thread_name_prefix="reader")
        self._control: Any = None

    def _session(self, req: ReadRequest, tag: str) -> Any:
        conn = self._connect(self.path)
        try:
            # USE before readonly: the database is the request's, and readonly allows USE anyway.
            conn.query(f"USE `{req.database or self.database}`", "TSV")  # a checked identifier
            for key, value in self.limits.session_settings(embedded=True, tag=tag):
                conn.query(f"SET {key} = '{value}'", "TSV")
        except Exception:
            conn.close()
            raise
        return conn

    def _run(self, req: ReadRequest, tag: str) -> Answer:
        conn = self._session(req, tag)
        try:
            canonical = (
                conn.query(
                    "SELECT formatQuery({q:String})", "TSVRaw", params={"q": text_param(req.sql)}
                )
                .bytes()
                .decode()
            )
            params = req.params
            ast = conn.query(ast_probe(canonical), "TSVRaw", params=params).bytes()
            _check(ast.decode("utf-8", "replace"))
            fmt = trailing_format(canonical) or req.default_format
            body = conn.query(canonical, req.default_format, params=params).bytes() or b""
            return Answer(fmt=fmt, body=body)
        except QueryError:
            raise
        except Exception as exc:
            raise _as_query_error(exc) from None
        finally:
            conn.close()

    def _kill(self, tag: str) -> None:
        if self._control is None:
            self._control = self._connect(self.path)
        self._control.query(f"KILL QUERY WHERE Settings['log_comment'] = '{tag}' ASYNC", "TSV")

    async def execute(self, req: ReadRequest) -> Answer:
        if self.slots.locked():
            raise QueryError(TOO_MANY_QUERIES_CODE, _BUSY)
        loop = asyncio.get_running_loop()
        tag = f"opens-reader-{uuid.uuid4().hex}"
        async with self.slots:
            work = loop.run_in_executor(self.pool, self._run, req, tag)
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                # The client went away: stop the query rather than let it hold a slot.
                log.info("query endpoint: client gone, killing its query")
                await loop.run_in_executor(self.pool, self._kill, tag)
                raise

    async def close(self) -> None:
        if self._control is not None:
            self._control.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


class ServerReaders:
    """Reader queries forwarded to a ClickHouse server over HTTP, streamed back as they come.

    The server enforces everything: the session settings travel in the URL with
    ``readonly=1`` last, and a reader account with a read-only profile (README) is the
    operator's second wall. The policy check runs on the server's parse too."""

    def __init__(self, url: str, database: str, limits: ReaderLimits, concurrency: int = 4) -> None:
        parts = urlsplit(url)
        self.slots = asyncio.Semaphore(concurrency)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/"
        self.auth = (parts.username or "default", parts.password or "")
        self.database = database
        self.limits = limits
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(limits.max_execution_seconds + 30))

    def _params(self, req: ReadRequest, tag: str, fmt: str) -> dict[str, str]:
        params = {f"param_{k}": v for k, v in req.params.items()}
        params.update(self.limits.session_settings(embedded=False, tag=tag))
        params.update({"database": req.database or self.database, "default_format": fmt})
        return params

    async def _scalar(self, sql: str, params: dict[str, str]) -> str:
        resp = await self.http.post(self.base, params=params, content=sql, auth=self.auth)
        if resp.status_code != 200:
            raise _as_query_error(Exception(resp.text))
        return resp.text

    async def execute(self, req: ReadRequest) -> Answer:
        if self.slots.locked():
            raise QueryError(TOO_MANY_QUERIES_CODE, _BUSY)
        await self.slots.acquire()
        try:
            return await self._execute(req)
        except BaseException:
            self.slots.release()
            raise

    async def _execute(self, req: ReadRequest) -> Answer:
        tag = f"opens-reader-{uuid.uuid4().hex}"
        probe = self._params(req, tag, "TSVRaw")
        canonical = await self._scalar(
            "SELECT formatQuery({q:String})", {**probe, "param_q": text_param(req.sql)}
        )
        canonical = canonical.rstrip("\n")
        _check(await self._scalar(ast_probe(canonical), probe))
        fmt = trailing_format(canonical) or req.default_format
        request = self.http.build_request(
            "POST", self.base, params=self._params(req, tag, fmt), content=canonical
        )
        resp = await self.http.send(request, auth=self.auth, stream=True)
        if resp.status_code != 200:
            text = (await resp.aread()).decode("utf-8", "replace")
            await resp.aclose()
            raise _as_query_error(Exception(text))

        async def chunks() -> AsyncGenerator[bytes, None]:
            try:
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                await resp.aclose()  # closing the connection cancels the server's query
                self.slots.release()

        keep = ("X-ClickHouse-Summary", "X-ClickHouse-Timezone")
        headers = {k: resp.headers[k] for k in keep if k in resp.headers}
        return Answer(fmt=fmt, chunks=chunks(), headers=headers)

    async def close(self) -> None:
        await self.http.aclose()
