"""Where decoded hits go, and the one thread that sends them there.

Delivery contract
-----------------
The parser hands encoded batches of hits (``encode``) and "object finished" notes to ``Writer``
through a bounded queue (backpressure: the parser waits when the sink is slower). The writer thread
sends them on (``DirectDelivery``: Arrow inserts of ``INSERT_ROWS`` hits into ``hits_ingest``,
which drops forgotten subscribers inside the insert (processor.suppression);
``KafkaDelivery``: messages on the hits topic, partitioned as the worker expects) and, before it
records any finished object in
the manifest, calls ``settle()``: every insert done, every Kafka message acknowledged by all
in-sync replicas (``acks='all'``). So a manifest row never names an object whose hits could still
be lost. A crash can leave hits delivered without a manifest row; the next run sends them again,
and the ``hits`` table (ReplacingMergeTree by request id) with its idempotent aggregates absorbs
that — the same reason a backfill overlapping real time changes no number.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from processor.backfill.encode import KafkaPayload
from processor.backfill.manifest import ManifestEntry, insert_entries
from processor.backoff import GaveUp, retry_blocking
from processor.errors import OpensError
from processor.sinks.clickhouse.sink import INGEST_TABLE, INSERT_SETTINGS
from processor.suppression import load_suppressed

log = logging.getLogger(__name__)

__all__ = [
    "BackfillSinkError",
    "Delivery",
    "DirectDelivery",
    "KafkaDelivery",
    "Writer",
    "topic_partitions",
]

INSERT_ROWS = 200_000  # hits per ClickHouse insert: large parts, few merges, bounded memory
MANIFEST_EVERY = 2.0  # seconds: how long a finished object may wait for its manifest row


class BackfillSinkError(OpensError):
    """ClickHouse or Kafka refused the backfill's writes; ``target`` names which."""

    def __init__(self, message: str, *, target: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.target = target


class Delivery(Protocol):
    """Called from the writer thread only."""

    name: str

    def send(self, payload: Any) -> None:
        """Take one encoded batch (``encode``: Arrow rows or Kafka messages)."""

    def settle(self) -> None:
        """Return once everything sent so far is durable."""

    def close(self) -> None: ...


def _retrying(what: str, target: str, fn: Callable[[], None], attempts: int = 5) -> None:
    try:
        retry_blocking(fn, attempts=attempts, base=0.2, cap=5.0)
    except GaveUp as exc:
        msg = f"{what} failed {attempts} times: {exc.last}"
        raise BackfillSinkError(
            msg, target=target, hint="re-run later: finished objects are skipped"
        ) from None


class DirectDelivery:
    """``--direct``: Arrow record batches gathered into inserts of ``batch_size`` hits."""

    name = "clickhouse"

    def __init__(self, client: Any, database: str, *, batch_size: int = INSERT_ROWS) -> None:
        self.client = client
        self.database = database
        self.batch_size = batch_size
        self._batches: list[pa.RecordBatch] = []
        self._rows = 0
        self.suppressed = 0  # hits of forgotten subscribers left out

    def send(self, payload: pa.RecordBatch) -> None:
        self._batches.append(payload)
        self._rows += payload.num_rows
        if self._rows >= self.batch_size:
            self.settle()

    def settle(self) -> None:
        if not self._batches:
            return
        table = pa.Table.from_batches(self._batches)
        self._batches, self._rows = [], 0
        table = self._without_suppressed(table)

        def insert() -> None:
            self.client.insert_arrow(
                INGEST_TABLE, table, database=self.database, settings=INSERT_SETTINGS
            )

        _retrying(f"inserting {table.num_rows:,} hits", "clickhouse", insert)

    def _without_suppressed(self, table: pa.Table) -> pa.Table:
        """Counts and leaves out forgotten subscribers' hits. The list is read again before each
        insert (one small query per ``INSERT_ROWS`` hits); ``hits_ingest`` filters as well, so
        a subscriber forgotten after this read is still never written."""
        suppressed = load_suppressed(self.client, self.database)
        if not suppressed:
            return table
        listed = pc.is_in(table.column("sid"), value_set=pa.array(sorted(suppressed)))
        dropped = pc.sum(listed).as_py() or 0
        if not dropped:
            return table
        self.suppressed += dropped
        log.info("left out %d hits of forgotten subscribers", dropped)
        return table.filter(pc.invert(listed))

    def close(self) -> None:
        if self.suppressed:
            log.warning("left out %d hits of forgotten subscribers in all", self.suppressed)
        self._batches.clear()


class KafkaDelivery:
    """Default mode: the hits topic the worker's ``store`` agent consumes (``processor.wire``).

    Values (``encode.KafkaMessages``) are the JSON Faust's ``json`` serializer reads; the partition
    is chosen from the subscriber id exactly as the real-time path does. The producer runs on a
    private event loop owned by the writer thread.
    """

    name = "kafka"

    def __init__(self, brokers: str, topic: str, partitions: int) -> None:
        from aiokafka import AIOKafkaProducer

        self.topic = topic
        self.partitions = partitions
        self._loop = asyncio.new_event_loop()
        self._pending: list[asyncio.Future[Any]] = []

        async def start() -> Any:
            producer = AIOKafkaProducer(
                bootstrap_servers=brokers,
                acks="all",
                linger_ms=20,
                max_batch_size=1 << 20,
                max_request_size=4 << 20,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # releases its connections; no "unclosed" warning
                raise
            return producer

        try:
            self._producer = self._loop.run_until_complete(start())
        except Exception as exc:
            self._loop.close()
            msg = f"cannot reach Kafka at {brokers}: {exc or type(exc).__name__}"
            raise BackfillSinkError(
                msg, target="kafka", hint="check OPENS_KAFKA_BROKERS, or use --direct"
            ) from None

    def send(self, payload: KafkaPayload) -> None:
        async def go() -> None:
            for partition, value in payload:
                fut = await self._producer.send(self.topic, value=value, partition=partition)
                self._pending.append(fut)

        self._loop.run_until_complete(go())

    def settle(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return

        async def acks() -> None:
            await asyncio.gather(*pending)

        try:
            self._loop.run_until_complete(acks())
        except Exception as exc:
            msg = f"Kafka did not acknowledge {len(pending)} messages: {exc}"
            raise BackfillSinkError(
                msg, target="kafka", hint="re-run later: finished objects are skipped"
            ) from None

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._producer.stop())
        finally:
            self._loop.close()


def topic_partitions(brokers: str, topic: str, *, timeout: float = 10.0) -> int | None:
    """How many partitions the broker has for ``topic`` (``None``: no such topic, or no answer).

    The worker partitions by the broker's count, not the setting (topics made earlier win), so
    the backfill must too: the same subscriber's hits meet on the same partition either way.
    """
    from aiokafka import AIOKafkaProducer

    async def go() -> int | None:
        producer = AIOKafkaProducer(bootstrap_servers=brokers)
        try:
            await producer.start()
            found = await asyncio.wait_for(producer.partitions_for(topic), timeout)
            return len(found) if found else None
        except Exception:
            return None
        finally:
            await producer.stop()

    return asyncio.run(go())


_STOP = object()


class Writer:
    """The writer thread: hits → ``delivery``; finished objects → manifest, after ``settle()``;
    a ``pending`` entry (its reading stopped on a read error) → no row at all.

    ``put_payload``/``finished`` block when the queue is full and re-raise a failure of the
    thread in the caller. ``close()`` drains the queue, settles and writes the last rows.
    """

    def __init__(
        self,
        delivery_factory: Callable[[], Delivery],
        manifest_client: Any,
        database: str,
        *,
        depth: int = 4,
        on_recorded: Callable[[ManifestEntry], None] | None = None,
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._factory = delivery_factory
        self._manifest_client = manifest_client
        self._database = database
        self._on_recorded = on_recorded
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backfill-write", daemon=True)
        self._thread.start()
        self._ready.wait()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _put(self, item: Any) -> None:
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            return

    def put_payload(self, payload: Any) -> None:
        self._put(payload)

    def finished(self, entry: ManifestEntry) -> None:
        self._put(entry)

    def close(self) -> None:
        if self._thread.is_alive():
            self._put(_STOP)
            self._thread.join()
        self._raise()

    def _record(self, delivery: Delivery, entries: list[ManifestEntry]) -> None:
        delivery.settle()
        if not entries:
            return

        def insert() -> None:
            insert_entries(self._manifest_client, self._database, entries)

        _retrying(f"recording {len(entries)} finished objects", "clickhouse", insert)
        if self._on_recorded is not None:
            for e in entries:
                self._on_recorded(e)
        entries.clear()

    def _run(self) -> None:
        try:
            delivery = self._factory()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        pending: list[ManifestEntry] = []
        oldest = 0.0
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    self._record(delivery, pending)
                    return
                if isinstance(item, ManifestEntry) and item.pending:
                    # Never recorded (its hits may still go out: keyed by request id, they are
                    # absorbed when the next run sends them again).
                    if self._on_recorded is not None:
                        self._on_recorded(item)
                elif isinstance(item, ManifestEntry):
                    if not pending:
                        oldest = time.monotonic()
                    pending.append(item)
                elif item is not None:
                    delivery.send(item)
                if pending and time.monotonic() - oldest >= MANIFEST_EVERY:
                    self._record(delivery, pending)
        except BaseException as exc:
            self._error = exc
            # Keep draining so a blocked producer sees the error instead of waiting forever.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            delivery.close()
