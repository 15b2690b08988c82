"""The worker's copy of the suppression list, and the subscriber state it erases
(processor.suppression explains the whole mechanism).

ClickHouse itself never writes a forgotten subscriber's hits (``hits_ingest``); this copy keeps
the worker's own memory of them out too: their hits are dropped before dedupe (so no
first-open event and no table state is made for them), and the state of every listed subscriber
in a partition this worker owns is deleted with a changelog tombstone, so a restart or a
rebalance does not recover it.

``lock`` orders the two writers of that state. ``handle`` holds it from the moment it checks the
list (after the sink's write) until its state is written; a scrub takes it after updating the
list. So either the batch sees the subscriber listed and writes a tombstone, or the scrub runs
after the batch's write and deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from processor.core.hit import Hit
from processor.metrics import Metrics
from processor.offsets import subscriber_key
from processor.suppression import Split, load_suppressed, split_suppressed
from processor.table_writes import delete_keys
from processor.wire import murmur2_partition

log = logging.getLogger(__name__)


class WorkerSuppression:
    """``query(fn)`` runs ``fn(client)`` against ClickHouse (the sink's thread);
    ``owned()`` lists the hits-topic partitions this worker holds now, ``partitions()`` how many
    the topic has; ``producer()`` is the aiokafka producer the table's changelog goes through."""

    def __init__(
        self,
        query: Callable[[Callable[[Any], Any]], Any],
        database: str,
        metrics: Metrics,
        *,
        table: Any,
        producer: Callable[[], Any],
        owned: Callable[[], set[int]],
        partitions: Callable[[], int],
    ) -> None:
        self._query = query
        self.database = database
        self.metrics = metrics
        self.table = table
        self._producer = producer
        self._owned = owned
        self._partitions = partitions
        self.sids: frozenset[str] | None = None  # None: not loaded yet
        self._scrubbed: set[str] = set()  # listed subscribers whose state is gone here
        self.lock = asyncio.Lock()

    def listed(self, sid: str) -> bool:
        return self.sids is not None and sid in self.sids

    async def refresh(self) -> bool:
        """Read the list again and scrub the newly listed; ``False`` if ClickHouse did not
        answer (the engine still filters, so the worker goes on)."""
        try:
            latest = await self._query(lambda c: load_suppressed(c, self.database))
        except Exception as exc:
            log.warning("suppression list not refreshed: %r", exc)
            return False
        self.sids = frozenset(latest)
        self._scrubbed &= self.sids  # an unforgotten subscriber may be forgotten again later
        await self.scrub()
        return True

    def reassigned(self) -> None:
        """Partitions moved: the ones now owned may hold state another worker did not scrub."""
        self._scrubbed.clear()

    async def scrub(self) -> int:
        """Delete the state of listed subscribers whose partition this worker owns."""
        if not self.sids:
            return 0
        todo = self.sids - self._scrubbed
        if not todo:
            return 0
        owned, n = self._owned(), self._partitions()
        items = []
        for sid in todo:
            p = murmur2_partition(sid.encode(), n)
            if p in owned:
                items.append((p, subscriber_key(sid)))
                self._scrubbed.add(sid)
        if not items:
            return 0
        async with self.lock:
            done = await delete_keys(self.table, self._producer(), items)
        log.info("erased the worker state of %d forgotten subscribers", done)
        return done

    def split(self, hits: Iterable[Hit]) -> Split:
        """The batch without listed subscribers' hits, counted and logged."""
        out = split_suppressed(hits, self.sids or frozenset())
        if out.dropped:
            self.metrics.suppressed_hits.labels("worker").inc(out.dropped)
            log.info("dropped %d hits of %d forgotten subscribers", out.dropped, len(out.sids))
        return out
