"""Send planned requests to an edge over HTTP, as the simulated viewers would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from processor.errors import OpensError
from processor.traffic.mix import Planned, TrafficPlan, plan_traffic
from processor.traffic.sent import Sent
from processor.traffic.truth import Expected, expected

__all__ = ["Sent", "TrafficError", "TrafficResult", "run_traffic", "send_traffic"]

Progress = Callable[[int, int], None]


class TrafficError(OpensError):
    """A request could not be sent: whether the edge logged it is unknown, so the truth is too."""


async def send_traffic(
    base_url: str,
    requests: Sequence[Planned],
    *,
    concurrency: int = 16,
    progress: Progress | None = None,
) -> list[Sent]:
    """Every request once (no retries: a retried request would be a second request)."""
    base = base_url.rstrip("/")
    done = 0
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(p: Planned) -> Sent:
            nonlocal done
            headers = {"User-Agent": p.user_agent, "X-Forwarded-For": p.ip}
            async with sem:
                try:
                    async with session.request(
                        p.method,
                        URL(base + p.target, encoded=True),  # exactly as planned, not re-quoted
                        headers=headers,
                        allow_redirects=False,
                    ) as resp:
                        await resp.read()
                        sent = Sent(p, resp.status, resp.headers.get("x-amz-cf-id", ""))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    msg = f"{p.method} {p.target[:60]} to {base} failed: {exc}"
                    raise TrafficError(msg, hint="is the edge running?") from None
            done += 1
            if progress is not None:
                progress(done, len(requests))
            return sent

        return list(await asyncio.gather(*(one(p) for p in requests)))


@dataclass
class TrafficResult:
    plan: TrafficPlan
    sent: list[Sent] = field(default_factory=list)

    def expected(self, realtime_lost: set[str] | frozenset[str] = frozenset()) -> Expected:
        return expected(self.plan, self.sent, realtime_lost)


def run_traffic(
    base_url: str,
    secret: bytes,
    *,
    seed: int = 2026,
    subscribers: int = 400,
    pixel_path: str = "/o.gif",
    concurrency: int = 16,
    progress: Progress | None = None,
) -> TrafficResult:
    """Plan the demo's traffic, send it to the edge at ``base_url``, keep what it answered."""
    plan = plan_traffic(seed, secret, subscribers=subscribers, pixel_path=pixel_path)
    sent = asyncio.run(
        send_traffic(base_url, plan.requests, concurrency=concurrency, progress=progress)
    )
    return TrafficResult(plan, sent)
