"""Where the query endpoint runs a reader's query: the embedded engine, or a ClickHouse server.

Every request gets a session of its own, so nothing a query leaves behind (a setting, a
database, a half-read result) can reach the next request, and a slow reader never holds a
lock that ingestion waits on. The session is made read-only by ClickHouse (``query_policy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

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
HEAD_BYTES = 1 << 20
SLOT_WAIT_SECONDS = 1.0
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


async def _take(slots: asyncio.Semaphore) -> None:
    """A reader slot; a request waits a moment for one (a client's previous query may be just
    letting its slot go), then is refused like ClickHouse's TOO_MANY_SIMULTANEOUS_QUERIES."""
    try:
        await asyncio.wait_for(slots.acquire(), timeout=SLOT_WAIT_SECONDS)
    except TimeoutError:
        raise QueryError(TOO_MANY_QUERIES_CODE, _BUSY) from None


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
    """An answer streaming in ``chunks``; ``release()`` (idempotent) frees what the request
    holds — its slot, its session or connection — and the caller calls it however it ends."""

    fmt: str
    chunks: AsyncGenerator[bytes, None]
    release: Callable[[], None]
    headers: dict[str, str] = field(default_factory=dict)


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return run


async def _capped(chunks: AsyncIterator[bytes], cap: int) -> AsyncGenerator[bytes, None]:
    """``chunks`` up to ``cap`` bytes: ClickHouse's ``max_result_bytes`` counts blocks, not the
    formatted answer (JSONEachRow repeats every key), so the answer itself is bounded here."""
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > cap:
            # Headers are gone: say it the way ClickHouse does mid-answer, and stop.
            yield f"\nCode: 396. DB::Exception: the answer exceeds {cap} bytes".encode()
            return
        yield chunk


class QueryBackend(Protocol):
    async def execute(self, req: ReadRequest) -> Answer: ...

    async def close(self) -> None: ...


class _ChdbSession:
    """One request's chDB connection and stream; every call runs on the request's own thread."""

    def __init__(self, readers: ChdbReaders, req: ReadRequest, tag: str) -> None:
        self.readers, self.req, self.tag = readers, req, tag
        self.conn: Any = None
        self.stream: Any = None
        self.exhausted = False

    def open(self) -> tuple[str, bytes]:
        """Check the statement and start it; the output format and the first chunk."""
        try:
            self.conn = self.readers.session(self.req, self.tag)
            q = {"q": text_param(self.req.sql)}
            raw = self.conn.query("SELECT formatQuery({q:String})", "TSVRaw", params=q).bytes()
            canonical = raw.decode("utf-8")
            ast = self.conn.query(ast_probe(canonical), "TSVRaw", params=self.req.params).bytes()
            _check(ast.decode("utf-8", "replace"))
            fmt = trailing_format(canonical) or self.req.default_format
            self.readers.check_format(fmt)
            self.stream = self.conn.send_query(canonical, self.req.default_format, self.req.params)
            return fmt, self._head()
        except QueryError:
            raise
        except UnicodeDecodeError:
            raise QueryError(
                36, "the query text must be UTF-8 (use escapes for raw bytes)"
            ) from None
        except Exception as exc:
            raise _as_query_error(exc) from None

    def _head(self) -> bytes:
        """The answer's first ``HEAD_BYTES`` (all of a small one): an error inside them still
        gets its HTTP status, as ClickHouse's own response buffer gives."""
        head = bytearray()
        while len(head) < HEAD_BYTES and (chunk := self.next()) is not None:
            head += chunk
        return bytes(head)

    def next(self) -> bytes | None:
        try:
            chunk = self.stream.fetch()
        except Exception as exc:
            raise _as_query_error(exc) from None
        if chunk is None:
            self.exhausted = True
            return None
        return bytes(chunk.bytes() or b"")

    def close(self) -> None:
        if self.stream is not None and not self.exhausted:
            with contextlib.suppress(Exception):
                self.stream.close()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


async def _chunks(
    loop: asyncio.AbstractEventLoop,
    thread: ThreadPoolExecutor,
    session: _ChdbSession,
    first: bytes,
) -> AsyncGenerator[bytes, None]:
    """The session's answer, each further chunk fetched on the request's own thread."""
    chunk: bytes | None = first
    while chunk is not None:
        if chunk:
            yield chunk
        try:
            chunk = await asyncio.shield(loop.run_in_executor(thread, session.next))
        except QueryError as exc:
            yield f"\nCode: {exc.code}. DB::Exception: {exc.message}\n".encode()
            return


class ChdbReaders:
    """Reader sessions on this process's embedded engine: a new chDB connection per request.

    Each request owns a thread for its engine calls and one of ``concurrency`` slots until its
    last call has returned, also when its client left early: a query that ignores being killed
    (one expensive function call is not interrupted) keeps its slot, so at most ``concurrency``
    readers ever run and further requests get a quick 503. Answers stream with back-pressure,
    and their size is capped (``max_result_bytes``) whatever the output format."""

    def __init__(
        self, path: str, database: str, limits: ReaderLimits, concurrency: int = 4
    ) -> None:
        import chdb

        self._connect: Any = cast(Any, chdb.connect)  # typed in some chdb builds, not in others
        self.path = path if path.startswith(":memory:") else os.path.realpath(path)
        self.database = database
        self.limits = limits
        self.slots = asyncio.Semaphore(concurrency)
        self._control: Any = None
        self._control_lock = threading.Lock()
        self._killer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader-kill")
        self._formats: frozenset[str] | None = None

    def session(self, req: ReadRequest, tag: str) -> Any:
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

    def _control_query(self, sql: str, fmt: str = "TSV") -> bytes:
        with self._control_lock:
            if self._control is None:
                self._control = self._connect(self.path)
            return bytes(self._control.query(sql, fmt).bytes() or b"")

    def kill(self, tag: str) -> None:
        log.info("query endpoint: stopping an unfinished query (%s)", tag)
        self._control_query(f"KILL QUERY WHERE Settings['log_comment'] = '{tag}' ASYNC")

    def check_format(self, fmt: str) -> None:
        """Only ClickHouse's own output formats: chDB adds Python ones (DataFrame, ArrowTable)
        that build objects in this process, outside ClickHouse's memory accounting."""
        if self._formats is None:
            names = self._control_query("SELECT lower(name) FROM system.formats WHERE is_output")
            self._formats = frozenset(names.decode().split())
        if fmt.lower() not in self._formats:
            raise QueryError(73, f"unknown output format {fmt!r} (UNKNOWN_FORMAT)")

    async def execute(self, req: ReadRequest) -> Answer:
        await _take(self.slots)
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader")
        session = _ChdbSession(self, req, f"opens-reader-{uuid.uuid4().hex}")

        @_once
        def finish() -> None:
            if not session.exhausted:
                # The client left or the answer was cut: stop the query now, from another
                # connection (the request's own thread may be inside the engine call).
                self._killer.submit(self.kill, session.tag)
            # Queued behind whatever call is still running: the slot frees when the engine does.
            thread.submit(session.close).add_done_callback(
                lambda _: loop.call_soon_threadsafe(self.slots.release)
            )
            thread.shutdown(wait=False)

        try:
            fmt, first = await asyncio.shield(loop.run_in_executor(thread, session.open))
        except BaseException:
            finish()
            raise
        chunks = _capped(_chunks(loop, thread, session, first), self.limits.max_result_bytes)
        return Answer(fmt=fmt, chunks=chunks, release=finish)

    async def close(self) -> None:
        self._killer.shutdown(wait=True)
        with self._control_lock:
            if self._control is not None:
                self._control.close()
                self._control = None


class ServerReaders:
    """Reader queries forwarded to a ClickHouse server over HTTP, streamed back as they come.

    The server enforces everything: the session settings travel in the URL with
    ``readonly=1`` last, and a reader account with a read-only profile (README) is the
    operator's second wall. The policy check runs on the server's parse too."""

    def __init__(self, url: str, database: str, limits: ReaderLimits, concurrency: int = 4) -> None:
        parts = urlsplit(url)
        self.slots = asyncio.Semaphore(concurrency)
        self._closing: set[asyncio.Future[None]] = set()
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/"
        self.auth = (unquote(parts.username or "default"), unquote(parts.password or ""))
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
        await _take(self.slots)
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

        @_once
        def release() -> None:
            # Closing the connection cancels the server's query (cancel_http_readonly_…).
            closing = asyncio.ensure_future(resp.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            self.slots.release()

        keep = ("X-ClickHouse-Summary", "X-ClickHouse-Timezone")
        headers = {k: resp.headers[k] for k in keep if k in resp.headers}
        chunks = _capped(resp.aiter_raw(), self.limits.max_result_bytes)
        return Answer(fmt=fmt, chunks=chunks, release=release, headers=headers)

    async def close(self) -> None:
        await self.http.aclose()
