"""Kinesis source: poll every shard of a stream and forward records, checkpointing after acks.

A thin adapter around boto3 (no KCL, no DynamoDB). Each GetRecords batch is handed to
``forward`` together with its shard id; only when ``forward`` returns (the records are
acknowledged by Kafka) does the shard's checkpoint advance, so a crash re-reads and never
skips. boto3 is blocking, so calls run in a thread; one asyncio task per shard.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from botocore.exceptions import ClientError

from processor.backoff import backoff_delay
from processor.metrics import Metrics

log = logging.getLogger(__name__)

THROTTLED = {"ProvisionedThroughputExceededException", "LimitExceededException"}
MIN_POLL_SECONDS = 0.2  # 5 GetRecords/s per shard is the service limit


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One user record from Kinesis, with its position (KPL sub-records share ``seq``)."""

    shard: str
    seq: str
    sub: int
    arrival_ms: int
    data: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "seq": self.seq,
            "sub": self.sub,
            "arrival_ms": self.arrival_ms,
            "data": base64.b64encode(self.data).decode("ascii"),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> SourceRecord:
        return cls(
            d["shard"], d["seq"], int(d["sub"]), int(d["arrival_ms"]), base64.b64decode(d["data"])
        )


def user_records(shard: str, records: list[dict[str, Any]]) -> Iterator[SourceRecord]:
    """boto3 GetRecords records → user records; KPL-aggregated ones are deaggregated."""
    for rec in iter_deaggregate_records(records, data_format="Boto3"):
        k = rec["kinesis"]
        data = k["data"]
        if k.get("aggregated"):
            data = base64.b64decode(data)  # the library hands sub-records back base64-encoded
        arrival = k.get("approximateArrivalTimestamp")
        arrival_ms = int(arrival.timestamp() * 1000) if isinstance(arrival, datetime) else 0
        yield SourceRecord(
            shard, k["sequenceNumber"], int(k.get("subSequenceNumber", 0)), arrival_ms, bytes(data)
        )


Forward = Callable[[str, list[SourceRecord]], Awaitable[None]]


class KinesisSource:
    """Reads all shards of ``stream``; ``forward`` must return only once Kafka has the records."""

    def __init__(
        self,
        client: Any,
        stream: str,
        forward: Forward,
        metrics: Metrics,
        *,
        start: str = "TRIM_HORIZON",
        poll_interval: float = 1.0,
        batch_limit: int = 1000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.forward = forward
        self.metrics = metrics
        self.start = start
        self.poll_interval = max(MIN_POLL_SECONDS, poll_interval)
        self.batch_limit = batch_limit
        self.checkpoints: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, **kwargs)

    async def list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            page = await self._call(self.client.list_shards, **kwargs)
            shards.extend(page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}  # StreamName must be omitted with NextToken

    async def _iterator(self, shard: str) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        if shard in self.checkpoints:
            kwargs.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=self.checkpoints[shard],
            )
        else:
            kwargs["ShardIteratorType"] = self.start
        resp = await self._call(self.client.get_shard_iterator, **kwargs)
        return str(resp["ShardIterator"])

    async def read_shard(self, shard: str) -> None:
        """Poll one shard until it is closed and drained, or the task is cancelled."""
        iterator: str | None = await self._iterator(shard)
        throttled = 0
        while iterator is not None:
            try:
                resp = await self._call(
                    self.client.get_records, ShardIterator=iterator, Limit=self.batch_limit
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "Unknown")
                self.metrics.kinesis_errors.labels(code).inc()
                if code in THROTTLED:
                    throttled += 1
                    await asyncio.sleep(backoff_delay(throttled, base=0.25, cap=10.0))
                    continue
                if code == "ExpiredIteratorException":
                    iterator = await self._iterator(shard)
                    continue
                raise
            throttled = 0
            records = resp.get("Records", [])
            lag = resp.get("MillisBehindLatest")
            if lag is not None:
                self.metrics.kinesis_lag_ms.labels(shard).set(lag)
            if records:
                batch = list(user_records(shard, records))
                await self.forward(shard, batch)
                # Only now, with Kafka's ack in hand, may the checkpoint move.
                self.checkpoints[shard] = records[-1]["SequenceNumber"]
                self.metrics.kinesis_records.labels(shard).inc(len(batch))
            iterator = resp.get("NextShardIterator")
            if not records or not lag:
                await asyncio.sleep(self.poll_interval)
            else:
                await asyncio.sleep(MIN_POLL_SECONDS)
        log.info("shard %s is closed and fully read", shard)

    async def run(self, refresh_seconds: float = 30.0) -> None:
        """Discover shards, keep one reader task per shard, rediscover periodically."""
        try:
            while True:
                for shard in await self.list_shards():
                    sid = shard["ShardId"]
                    if sid not in self._tasks:
                        log.info("reading Kinesis shard %s of %s", sid, self.stream)
                        self._tasks[sid] = asyncio.create_task(self.read_shard(sid))
                for sid, task in list(self._tasks.items()):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        log.error(
                            "reader of shard %s failed: %r; restarting", sid, task.exception()
                        )
                        del self._tasks[sid]
                await asyncio.sleep(refresh_seconds)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()
