"""Durable per-shard Kinesis checkpoints, and which worker owns which shard.

Checkpoints live in a compacted Kafka topic keyed by shard id, one partition per shard given by
``shard_partition``. That topic is also the **ownership** topic: the worker that Kafka's
consumer group assigns partition *p* owns every shard mapped to *p*. No leases of our own.

A checkpoint is written only after the records it covers were acknowledged by Kafka; it is the
last forwarded sequence number, or ``SHARD_END`` once a closed shard is read to its end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from processor.wire import murmur2_partition

log = logging.getLogger(__name__)

SHARD_END = "SHARD_END"


def newest(a: str | None, b: str | None) -> str | None:
    """The later of two checkpoints of one shard (``SHARD_END`` is the latest)."""
    if a is None or b is None:
        return a if b is None else b
    if SHARD_END in (a, b):
        return SHARD_END
    return a if int(a) >= int(b) else b


def shard_partition(shard_id: str, partitions: int) -> int:
    return murmur2_partition(shard_id.encode(), partitions)


class CheckpointStore(Protocol):
    def get(self, shard: str) -> str | None: ...
    async def put(self, shard: str, seq: str) -> None: ...
    async def refresh(self) -> None: ...


class MemoryCheckpoints:
    """For tests and single-process use: nothing survives the process."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, shard: str) -> str | None:
        return self.values.get(shard)

    async def put(self, shard: str, seq: str) -> None:
        self.values[shard] = seq

    async def refresh(self) -> None:
        return None


Send = Callable[[str, int, dict[str, str]], Awaitable[None]]


class KafkaCheckpoints:
    """Checkpoints in a compacted topic. ``send`` must return once Kafka acknowledged."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, send: Send) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self._send = send
        self.values: dict[str, str] = {}

    def get(self, shard: str) -> str | None:
        return self.values.get(shard)

    async def put(self, shard: str, seq: str) -> None:
        await self._send(shard, shard_partition(shard, self.partitions), {"seq": seq})
        self.values[shard] = seq

    async def refresh(self) -> None:
        """Read the whole topic (one small record per shard after compaction)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        # "earliest": should a fetch position ever be reset (a broker just restarted), the
        # read starts over instead of jumping to the end and finding no checkpoint at all.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            # We created the topic with this partition count; assigning (rather than asking
            # metadata) also keeps aiokafka's stop() from waiting on an idle coordinator.
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            found: dict[str, str] = {}
            read: set[TopicPartition] = set()
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, messages in batch.items():
                    read.add(tp)
                    for msg in messages:
                        if msg.key is not None and msg.value is not None:
                            found[msg.key.decode()] = json.loads(msg.value)["seq"]
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
            # Compaction keeps the newest record of every key, so a partition that is not empty
            # always yields one; none means the read went wrong, and starting shards without
            # their checkpoints would re-read (or, from LATEST, skip) records.
            unread = sorted(tp.partition for tp in tps if ends[tp] > 0 and tp not in read)
            if unread:
                msg = f"{self.topic}: partitions {unread} are not empty but yielded no checkpoint"
                raise RuntimeError(msg)
            merged = dict(found)
            for shard, seq in self.values.items():
                merged[shard] = newest(seq, merged.get(shard)) or seq
            self.values = merged
        finally:
            await consumer.stop()
