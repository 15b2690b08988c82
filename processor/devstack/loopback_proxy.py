"""The shared body of the fault-drill proxies: an aiohttp server on loopback, in a thread.

A proxy subclasses ``LoopbackProxy``, implements ``_handle`` (forwarding with ``_session``, or
failing on purpose) and is run with ``start()`` and ``stop()``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import ClassVar, Self

from aiohttp import ClientSession, ClientTimeout, web

from processor.devstack.process import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class LoopbackProxy:
    """Run with ``start()`` (a background thread with its own event loop), ``stop()`` at the end."""

    NAME: ClassVar[str] = "proxy"
    MAX_BODY: ClassVar[int] = 16 * 1024 * 1024
    AUTO_DECOMPRESS: ClassVar[bool] = True

    upstream: str
    host: str = "127.0.0.1"
    port: int = 0
    _thread: threading.Thread | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)
    _stopping: asyncio.Event | None = field(default=None, init=False)
    _session: ClientSession | None = field(default=None, init=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def _serve(self) -> None:
        self._session = ClientSession(
            timeout=ClientTimeout(total=30), auto_decompress=self.AUTO_DECOMPRESS
        )
        app = web.Application(client_max_size=self.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._stopping = asyncio.Event()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    def start(self) -> Self:
        if self.port == 0:
            self.port = free_port(self.host)

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=self.NAME, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            msg = f"the {self.NAME} did not start"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
