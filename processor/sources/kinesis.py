"""Kinesis source: poll the shards this worker owns and forward records, checkpointing after acks.

A thin adapter around boto3 (no KCL, no DynamoDB). Each GetRecords batch is handed to
``forward`` with its shard id; only when ``forward`` returns (Kafka acknowledged the records)
is the shard's checkpoint written, so a crash re-reads and never skips. Resharding: a child
shard is read only when every parent is finished (``SHARD_END``) or expired, which keeps each
key's records in order across a split or merge. boto3 blocks, so calls run in threads; one
asyncio task per shard.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from botocore.exceptions import ClientError

from processor.backoff import backoff_delay
from processor.metrics import Metrics
from processor.sources.checkpoints import SHARD_END, CheckpointStore, MemoryCheckpoints

log = logging.getLogger(__name__)

THROTTLED = {"ProvisionedThroughputExceededException", "LimitExceededException"}
MIN_POLL_SECONDS = 0.2  # 5 GetRecords/s per shard is the service limit


def kinesis_client() -> Any:
    """A boto3 Kinesis client that leaves response timestamps as sent.

    botocore turns every record's ``ApproximateArrivalTimestamp`` into a ``datetime`` through
    dateutil, which was a tenth of the worker's CPU in ``scripts/bench_worker``; the source never
    reads it. ``set_parser_defaults`` is botocore's documented hook for exactly this.
    """
    import boto3
    import botocore.session

    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=lambda value: value
    )
    return boto3.Session(botocore_session=session).client("kinesis")


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


def parents(shard: dict[str, Any]) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


Forward = Callable[[str, list[SourceRecord]], Awaitable[None]]


class KinesisSource:
    """Reads the owned shards of ``stream``; ``forward`` returns once Kafka has the records.

    ``owns(shard_id)`` says whether this worker owns a shard (Kafka partition assignment);
    ``checkpoints`` is where positions survive a restart or a hand-over to another worker.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        forward: Forward,
        metrics: Metrics,
        *,
        checkpoints: CheckpointStore | None = None,
        owns: Callable[[str], bool] = lambda _: True,
        start: str = "TRIM_HORIZON",
        start_timestamp: datetime | None = None,
        poll_interval: float = 1.0,
        batch_limit: int = 1000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.forward = forward
        self.metrics = metrics
        self.checkpoints = checkpoints if checkpoints is not None else MemoryCheckpoints()
        self.owns = owns
        self.start = start
        self.start_timestamp = start_timestamp
        self.poll_interval = max(MIN_POLL_SECONDS, poll_interval)
        self.batch_limit = batch_limit
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # Children started after their listed parents ended: their first record is already
        # past "LATEST", so they are read from TRIM_HORIZON (as KCL does for descendants).
        self._after_parents: set[str] = set()

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

    async def _iterator(self, shard: str) -> str | None:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        checkpoint = self.checkpoints.get(shard)
        if checkpoint == SHARD_END:
            return None
        if checkpoint is not None:
            kwargs.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=checkpoint
            )
        elif self.start == "AT_TIMESTAMP" and self.start_timestamp is not None:
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.start_timestamp)
        elif self.start == "LATEST" and shard not in self._after_parents:
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        resp = await self._call(self.client.get_shard_iterator, **kwargs)
        return str(resp["ShardIterator"])

    async def read_shard(self, shard: str) -> None:
        """Poll one shard until it is closed and drained, or the task is cancelled."""
        iterator = await self._iterator(shard)
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
                await self.checkpoints.put(shard, records[-1]["SequenceNumber"])
                self.metrics.kinesis_records.labels(shard).inc(len(batch))
            # Position confirmed: checkpoint written, or nothing new past it.
            self.metrics.checkpoint_age.checkpointed(shard)
            iterator = resp.get("NextShardIterator")
            if iterator is None:
                break
            await asyncio.sleep(MIN_POLL_SECONDS if records and lag else self.poll_interval)
        await self.checkpoints.put(shard, SHARD_END)
        self.metrics.checkpoint_age.forget(shard)
        log.info("shard %s is closed and fully read", shard)
        self._wake.set()  # its children may start now

    def _startable(self, shard: dict[str, Any], known: set[str]) -> bool:
        sid = shard["ShardId"]
        if sid in self._tasks or not self.owns(sid):
            return False
        if self.checkpoints.get(sid) == SHARD_END:
            return False
        # Parent first: a parent still listed must be finished before its child is read.
        return all(p not in known or self.checkpoints.get(p) == SHARD_END for p in parents(shard))

    async def run(self, refresh_seconds: float = 30.0) -> None:
        """Keep one reader per owned, startable shard; rediscover shards periodically."""
        try:
            while True:
                shards = await self.list_shards()
                known = {s["ShardId"] for s in shards}
                waiting = [
                    s
                    for s in shards
                    if self.owns(s["ShardId"])
                    and s["ShardId"] not in self._tasks
                    and any(p in known for p in parents(s))
                ]
                if waiting:  # a parent may be owned, and finished, by another worker
                    await self.checkpoints.refresh()
                for shard in shards:
                    if self._startable(shard, known):
                        sid = shard["ShardId"]
                        if any(p in known for p in parents(shard)):
                            self._after_parents.add(sid)
                        log.info("reading Kinesis shard %s of %s", sid, self.stream)
                        self._tasks[sid] = asyncio.create_task(self.read_shard(sid))
                for sid, task in list(self._tasks.items()):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        exc = task.exception()
                        log.error("reader of shard %s failed: %r; restarting", sid, exc)
                        del self._tasks[sid]
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), refresh_seconds)
        finally:
            await self.stop_readers()

    async def stop_readers(self) -> None:
        for sid in self._tasks:
            self.metrics.checkpoint_age.forget(sid)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
