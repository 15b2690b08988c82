"""An S3 endpoint that fails reads on demand: a loopback proxy in front of the emulator.

For fault drills only (tests, like ``kinesis_faults``). Every request is forwarded to moto
unchanged, except the first ``faults[key]`` GetObject calls of an object key, which fail as a
real network does: ``"reset"`` sends the status line, the full ``Content-Length`` and half of the
body, then drops the connection (the client sees a body cut short); ``"stall"`` sends half of
the body and then nothing for ``stall_seconds`` (the client's read times out); ``"500"`` answers
S3's ``InternalError``. Clients use it as their S3 endpoint
(``AWS_ENDPOINT_URL_S3=<proxy.endpoint>``); the key is the path-style ``/bucket/key``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from processor.devstack.loopback_proxy import HOP_BY_HOP, LoopbackProxy

__all__ = ["FlakyS3Proxy"]

INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
Fault = Literal["reset", "stall", "500"]


@dataclass
class FlakyS3Proxy(LoopbackProxy):
    """Run with ``start()`` (a background thread with its own event loop), ``stop()`` at the end.

    ``faults`` maps ``/bucket/key`` to how many of its next GetObject calls fail (``mode``);
    ``gets`` counts the GetObject calls seen per key, ``failed`` those that were made to fail.
    """

    NAME = "flaky S3 proxy"
    MAX_BODY = 64 * 1024 * 1024
    AUTO_DECOMPRESS = False

    mode: Fault = "reset"
    faults: dict[str, int] = field(default_factory=dict)
    stall_seconds: float = 5.0
    gets: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def _fault_for(self, request: web.Request) -> Fault | None:
        # GetObject: GET of /bucket/key without a sub-resource (a listing has ``?list-type``).
        if request.method != "GET" or request.query_string or request.path.count("/") < 2:
            return None
        self.gets[request.path] += 1
        if self.faults.get(request.path, 0) <= 0:
            return None
        self.faults[request.path] -= 1
        self.failed[request.path] += 1
        return self.mode

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._fault_for(request)
        if fault == "500":
            return web.Response(status=500, body=INTERNAL_ERROR, content_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if self._session is None:
            return web.Response(status=503, text="proxy is stopping")
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as resp:
            payload = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        if fault is None or resp.status >= 300:
            return web.Response(status=resp.status, body=payload, headers=out_headers)
        cut = web.StreamResponse(status=resp.status, headers=out_headers)
        cut.content_length = len(payload)
        await cut.prepare(request)
        await cut.write(payload[: len(payload) // 2])
        if fault == "stall":
            await asyncio.sleep(self.stall_seconds)
        if request.transport is not None:
            request.transport.abort()  # the connection reset mid-body
        return cut
