"""A Kinesis endpoint that throttles on demand: a loopback proxy in front of the emulator.

For fault drills only (``scripts/chaos``, tests). moto never throttles, so this proxy forwards
every request to it unchanged except, while ``throttle`` is above zero, that fraction of
``GetRecords`` calls, which get the answer Kinesis gives when a shard's read limit is exceeded
(HTTP 400, ``ProvisionedThroughputExceededException``). The worker sees the real protocol, so
its back-off and retry path runs exactly as it would against AWS. Point only the worker at it:
``AWS_ENDPOINT_URL_KINESIS=<proxy.endpoint>``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from aiohttp import web

from processor.devstack.loopback_proxy import HOP_BY_HOP, LoopbackProxy

THROTTLED_BODY = json.dumps(
    {
        "__type": "ProvisionedThroughputExceededException",
        "message": "Rate exceeded for shard in stream under account.",
    }
).encode()


@dataclass
class ThrottlingKinesisProxy(LoopbackProxy):
    """Run with ``start()`` (a background thread with its own event loop), ``stop()`` at the end."""

    NAME = "throttling Kinesis proxy"
    MAX_BODY = 16 * 1024 * 1024

    throttle: float = 0.0  # fraction of GetRecords calls answered with a throttling error
    seed: int = 0
    throttled: int = 0
    forwarded: int = 0
    _rnd: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)  # noqa: S311 - fault injection, not security

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
