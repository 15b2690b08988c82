"""A Kinesis endpoint that throttles on demand: a loopback proxy in front of the emulator.

For fault drills only (``scripts/chaos``, tests). moto never throttles, so this proxy forwards
every request to it unchanged except, while ``throttle`` is above zero, that fraction of
``GetRecords`` calls, which get the answer Kinesis gives when a shard's read limit is exceeded
(HTTP 400, ``ProvisionedThroughputExceededException``). The worker sees the real protocol, so
its back-off and retry path runs exactly as it would against AWS. Point only the worker at it:
``AWS_ENDPOINT_URL_KINESIS=<proxy.endpoint>``.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

from processor.devstack.process import free_port

THROTTLED_BODY = json.dumps(
    {
        "__type": "ProvisionedThroughputExceededException",
        "message": "Rate exceeded for shard in stream under account.",
    }
).encode()
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class ThrottlingKinesisProxy:
    """Run with ``start()`` (a background thread with its own event loop), ``stop()`` at the end."""

    upstream: str
    host: str = "127.0.0.1"
    port: int = 0
    throttle: float = 0.0  # fraction of GetRecords calls answered with a throttling error
    seed: int = 0
    throttled: int = 0
    forwarded: int = 0
    _rnd: random.Random = field(init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)
    _stopping: asyncio.Event | None = field(default=None, init=False)
    _session: ClientSession | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)  # noqa: S311 - fault injection, not security

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith(".GetRecords") and self._rnd.random() < self.throttle:
            self.throttled += 1
            return web.Response(
                status=400, body=THROTTLED_BODY, content_type="application/x-amz-json-1.1"
            )
        self.forwarded += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if self._session is None:
            return web.Response(status=503, text="proxy is stopping")
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            payload = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=resp.status, body=payload, headers=out_headers)

    async def _serve(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=30))
        app = web.Application(client_max_size=16 * 1024 * 1024)
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

    def start(self) -> ThrottlingKinesisProxy:
        if self.port == 0:
            self.port = free_port(self.host)

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="kinesis-faults", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            msg = "the throttling Kinesis proxy did not start"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
