"""The ClickHouse sink: batched, off the event loop, retried until ClickHouse takes the batch.

Delivery contract
-----------------
``write()`` returns only after ClickHouse has acknowledged the whole batch. Agents await it
before they take the next batch from their stream, and the store agent records a partition's
next offset only after that (processor.offsets: Faust's own commits can pass skipped events, so
the worker does not rely on them), so **no offset is recorded as processed for a hit that is
not in ClickHouse**. While ClickHouse is unreachable ``write()`` keeps retrying with capped
exponential back-off; the agent therefore stops consuming (backpressure) instead of dropping
hits or crashing the worker.

The price is at-least-once: a crash after an insert and before the offset commit replays the
batch. Every table absorbs that by construction: rows are keyed by CloudFront's request id in
ReplacingMergeTree tables (see the migrations), so a replayed batch changes no number.

Hits go into ``hits_ingest``, never ``hits``: its view drops forgotten subscribers inside the
INSERT (migration 0010, processor.suppression), so neither a replay nor a batch buffered here
while `opens forget` ran can write one back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from processor.backoff import backoff_delay
from processor.core.hit import Hit
from processor.metrics import Metrics

log = logging.getLogger(__name__)

# ``optimize_on_insert=0``: ClickHouse would otherwise collapse duplicate keys inside each inserted
# block (hits, first_opens, opens_by_minute), which doubled the cost of an insert when measured
# (scripts/profile_backfill). Nothing depends on it: every reader already deduplicates (FINAL,
# GROUP BY, uniqExact/min/max merges), exactly as it must for duplicates in separate inserts.
# ``parallel_view_processing``: the materialized views are filled concurrently.
# ``max_partitions_per_insert_block``: `hits` has a partition per day (migration 0011) and a
# backfill batch may span more than ClickHouse's default of 100 days.
INSERT_SETTINGS: dict[str, Any] = {
    "optimize_on_insert": 0,
    "parallel_view_processing": 1,
    "max_partitions_per_insert_block": 0,
}

# Where every writer inserts hits: the suppression list is applied there (migration 0010).
INGEST_TABLE = "hits_ingest"

# The first 20 are `hits`' columns up to migration 0011; 0012 added the last four.
HIT_COLUMNS: tuple[str, ...] = (
    "request_id",
    "ts",
    "source",
    "sid",
    "cid",
    "cat",
    "signature",
    "method",
    "status",
    "uri",
    "edge_location",
    "client_ip",
    "country",
    "user_agent",
    "client",
    "device",
    "machine",
    "referer",
    "bytes",
    "time_taken",
    "proxy",
    "certainty",
    "rules_version",
    "signals",
)


def hit_columns(hits: Sequence[Hit]) -> list[list[Any]]:
    """Column-oriented data for ``hits`` (DateTime64 as epoch-ms ints: the fast insert path)."""
    return [
        [h.request_id for h in hits],
        [h.ts_ms for h in hits],
        [h.source for h in hits],
        [h.sid or "" for h in hits],
        [h.cid or "" for h in hits],
        [h.cat for h in hits],
        [h.signature for h in hits],
        [h.method for h in hits],
        [h.status for h in hits],
        [h.uri for h in hits],
        [h.edge_location for h in hits],
        [h.client_ip for h in hits],
        [h.country for h in hits],
        [h.user_agent for h in hits],
        [h.client for h in hits],
        [h.device for h in hits],
        [h.machine or "" for h in hits],
        [h.referer for h in hits],
        [h.bytes for h in hits],
        [h.time_taken for h in hits],
        [h.proxy for h in hits],
        [h.certainty for h in hits],
        [h.rules_version for h in hits],
        [h.signals for h in hits],
    ]


class ClickHouseSink:
    """Writes hits to ``{database}.hits_ingest`` (so ``hits``); see the module docstring.

    ``connect`` builds a client lazily (and again after a failure), so a ClickHouse server that
    is down when the worker starts is not fatal either.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        database: str,
        metrics: Metrics,
        *,
        max_backoff: float = 30.0,
        table: str = INGEST_TABLE,
        columns: Sequence[str] = HIT_COLUMNS,
    ) -> None:
        self._connect = connect
        # ``columns``: a subset of HIT_COLUMNS, for a database older than migration 0012 (tests).
        self._keep = [i for i, name in enumerate(HIT_COLUMNS) if name in columns]
        self._columns = [HIT_COLUMNS[i] for i in self._keep]
        self._client: Any = None
        self.database = database
        self.metrics = metrics
        self.max_backoff = max_backoff
        self.table = table
        # One thread: clickhouse-connect clients are not shared across threads, and chDB
        # releases the GIL while it works, so the event loop keeps running during an insert.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-sink")

    def _insert_blocking(self, hits: Sequence[Hit]) -> None:
        if self._client is None:
            self._client = self._connect()
        try:
            data = hit_columns(hits)
            self._client.insert(
                self.table,
                data if len(self._keep) == len(data) else [data[i] for i in self._keep],
                column_names=self._columns,
                database=self.database,
                column_oriented=True,
                settings=INSERT_SETTINGS,
            )
        except Exception:
            self._client = None  # reconnect on the next attempt
            raise

    async def write(self, hits: Sequence[Hit]) -> None:
        """Insert ``hits``; returns once ClickHouse has them, retrying for as long as it takes."""
        if not hits:
            return
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self._pool, self._insert_blocking, hits)
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, cap=self.max_backoff)
                self.metrics.sink_failures.inc()
                log.warning(
                    "ClickHouse insert of %d hits failed (attempt %d), retrying in %.1fs: %s",
                    len(hits),
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                continue
            self.metrics.sink_batch_seconds.observe(time.perf_counter() - started)
            self.metrics.sink_rows.inc(len(hits))
            return

    async def call(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(client)`` on the sink's thread and client (one query, no retry: callers decide)."""

        def run() -> Any:
            if self._client is None:
                self._client = self._connect()
            try:
                return fn(self._client)
            except Exception:
                self._client = None
                raise

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
            self._client = None
