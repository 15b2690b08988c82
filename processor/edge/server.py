"""`opens edge`: an aiohttp server that answers like a CloudFront edge and logs like one.

Development and tests only. Every request (any path, any method) gets a fresh request id
(returned as ``x-amz-cf-id``, as CloudFront does) and is logged twice: a real-time record to
Kinesis (unless ``drop_realtime`` drops it, to exercise backfill reconciliation) and a line in
the hourly standard log in S3. The pixel path answers GET/HEAD with the GIF (304 to a matching
``If-None-Match``); other paths 404 as a distribution with an S3 origin would; other methods 403.

The viewer address is the first ``X-Forwarded-For`` entry when present — the traffic generator
stands in for clients all over the world from one loopback socket — else the socket's peer;
``c-country`` and ``asn`` come from ``processor.edge.geo`` as CloudFront derives them from the IP.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from infra.pixel import CACHE_CONTROL, CONTENT_TYPE, PIXEL_GIF, pixel_etag
from processor.core.fields import DEFAULT_REALTIME_FIELDS, canonical_order
from processor.edge.geo import locate, pop_for
from processor.edge.logged import LoggedRequest
from processor.edge.realtime_out import RealtimeShipper
from processor.edge.render import realtime_record
from processor.edge.standard_out import StandardLogWriter

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

__all__ = ["Edge", "EdgeConfig", "EdgeThread", "new_request_id"]

LAST_MODIFIED = "Mon, 02 Nov 2026 09:00:00 GMT"
NOT_FOUND = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)
BAD_METHOD = (
    b"<HTML><BODY><H1>403 ERROR</H1><H2>The request could not be satisfied.</H2>"
    b"This distribution is not configured to allow the HTTP request method that was used for "
    b"this request. The distribution supports only cachable requests.</BODY></HTML>"
)


def new_request_id() -> str:
    """A fresh id shaped like CloudFront's ``x-edge-request-id`` (56 URL-safe base64 chars)."""
    return base64.urlsafe_b64encode(os.urandom(40)).decode("ascii")


@dataclass(frozen=True)
class EdgeConfig:
    """Where the edge listens and where it logs."""

    stream: str
    log_bucket: str
    log_prefix: str
    distribution_id: str
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port (see Edge.url once started)
    pixel_path: str = "/o.gif"
    fields: tuple[str, ...] = DEFAULT_REALTIME_FIELDS
    distribution_domain: str = "d111111abcdef8.cloudfront.net"
    drop_realtime: float = 0.0
    duplicate_realtime: float = 0.0
    seed: int | None = None
    flush_seconds: float = 5.0
    kinesis_interval: float = 0.2


class Edge:
    """The request handler and the two log outputs; ``start``/``stop`` run it on a loop."""

    def __init__(self, config: EdgeConfig, kinesis: KinesisClient, s3: S3Client) -> None:
        self.config = config
        self.fields = canonical_order(config.fields)
        self.realtime = RealtimeShipper(kinesis, config.stream, interval=config.kinesis_interval)
        self.standard = StandardLogWriter(
            s3,
            config.log_bucket,
            config.log_prefix,
            config.distribution_id,
            flush_seconds=config.flush_seconds,
        )
        # Seeded: the same traffic in the same order drops the same records.
        self._rnd = random.Random(config.seed)  # noqa: S311 - simulation, not secrets
        self._etag = pixel_etag()
        self.requests = 0
        self.dropped_ids: set[str] = set()
        self.duplicated = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.url = ""

    # -- HTTP ----------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        rid = new_request_id()
        raw_path, _, query = request.raw_path.partition("?")
        forwarded = request.headers.get("X-Forwarded-For", "")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ip = forwarded.split(",")[0].strip() or (str(peer[0]) if peer else "")
        country, asn = locate(ip)
        pop = pop_for(country)
        pixel = raw_path == self.config.pixel_path or unquote(raw_path) == self.config.pixel_path
        headers = {
            "Server": "AmazonS3",
            "Via": f"1.1 {rid[:16].lower().replace('-', 'a')}.cloudfront.net (CloudFront)",
            "X-Amz-Cf-Pop": pop,
            "X-Amz-Cf-Id": rid,
        }
        if request.method not in ("GET", "HEAD"):
            status, body, result = 403, BAD_METHOD, "Error"
            headers |= {"Content-Type": "text/html", "Server": "CloudFront"}
        elif not pixel:
            status, body, result = 404, NOT_FOUND, "Error"
            headers |= {"Content-Type": "application/xml"}
        else:
            revalidated = request.headers.get("If-None-Match") == self._etag
            status, body, result = (304, b"", "Hit") if revalidated else (200, PIXEL_GIF, "Hit")
            headers |= {
                "Content-Type": CONTENT_TYPE,
                "Cache-Control": CACHE_CONTROL,
                "ETag": self._etag,
                "Last-Modified": LAST_MODIFIED,
                "Accept-Ranges": "bytes",
            }
        headers["X-Cache"] = f"{result} from cloudfront"
        response = web.Response(status=status, body=body, headers=headers)
        header_bytes = sum(len(k) + len(v) + 4 for k, v in headers.items()) + 64
        sent_body = 0 if request.method == "HEAD" else len(body)
        taken = time.perf_counter() - started
        self.log(
            LoggedRequest(
                request_id=rid,
                ts_ms=time.time_ns() // 1_000_000,
                method=request.method,
                path=raw_path,
                query=query,
                status=status,
                ip=ip,
                user_agent=request.headers.get("User-Agent", ""),
                referer=request.headers.get("Referer", ""),
                edge=pop,
                country=country,
                asn=asn,
                sc_bytes=header_bytes + sent_body,
                cs_bytes=len(request.raw_path)
                + sum(len(k) + len(v) + 4 for k, v in request.headers.items())
                + 16,
                time_taken=round(taken, 3),
                time_to_first_byte=round(taken, 3),
                host=request.headers.get("Host", ""),
                distribution_domain=self.config.distribution_domain,
                protocol="http",
                protocol_version=f"HTTP/{request.version.major}.{request.version.minor}",
                client_port=int(peer[1]) if peer else 0,
                result_type=result,
                content_type=headers["Content-Type"],
                content_len=len(body) if status != 304 else None,
                headers=tuple(request.headers.items()),
            )
        )
        return response

    def log(self, req: LoggedRequest) -> None:
        """Both log paths for one request; a dropped real-time record stays in the standard log."""
        self.requests += 1
        self.standard.add(req)
        if self._rnd.random() < self.config.drop_realtime:
            self.dropped_ids.add(req.request_id)
            return
        record = realtime_record(req, self.fields)
        self.realtime.add(record, req.request_id)
        if self._rnd.random() < self.config.duplicate_realtime:
            self.duplicated += 1  # Kinesis delivers at least once: the same record again
            self.realtime.add(record, req.request_id)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        port = int(self._runner.addresses[0][1])  # the bound port, also when asked for 0
        self.url = f"http://{self.config.host}:{port}"
        self._tasks = [
            asyncio.create_task(self.realtime.run()),
            asyncio.create_task(self.standard.run()),
        ]
        return self.url

    async def flush(self) -> None:
        """Ship everything logged so far (real-time records and standard log objects)."""
        await self.realtime.flush()
        await self.standard.flush()

    async def stop(self) -> None:
        """Stop serving, then flush both logs: nothing logged is left behind."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.flush()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "realtime_dropped": len(self.dropped_ids),
            "realtime_duplicated": self.duplicated,
            **self.realtime.stats(),
            **self.standard.stats(),
        }


class EdgeThread:
    """An ``Edge`` on its own event loop in a background thread (the demo and tests)."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="edge", daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.edge.start(), self.loop).result(30)

    def flush(self) -> None:
        asyncio.run_coroutine_threadsafe(self.edge.flush(), self.loop).result(120)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.edge.stop(), self.loop).result(120)
        except Exception:  # stopping goes on: the loop and thread must not outlive the caller
            log.exception("the edge did not stop cleanly; logs may not be flushed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()
