"""The suppression list: subscribers `opens forget` erased, whose hits are never written again.

Where the guarantee lives
-------------------------
In the engine. Every writer inserts into ``hits_ingest``, a Null table whose materialized view
(migration 0010) passes on to ``hits`` only the rows whose subscriber is not on
``forgotten_subscribers``; ClickHouse runs that view, and so reads the list, for each inserted
block inside the INSERT itself. Any later copy of a forgotten subscriber's hits — a re-run
backfill (``--direct`` or through Kafka and the worker), a late standard log, a Kafka replay, a
batch a writer held in memory while `opens forget` ran — is dropped when it reaches ClickHouse,
whatever the writer knew.

The race
--------
A block whose view read the list just before forget added the row can still be on its way into
``hits`` when forget deletes, and would outlive the delete. ``forget_subscriber`` therefore
(1) writes the suppression row, (2) waits until every INSERT that started before (1) finished
(``system.processes``), (3) deletes, (4) checks nothing of the subscriber is left and deletes
again if something is. After (1) no new insert can write the subscriber, after (2) none in flight
can, so what (3) deletes stays deleted.

The copies of the list in Python (below) serve what the engine cannot see: the worker's
per-subscriber state in its Faust table (dedupe and first opens) and the first-opens topic, and
counting. The worker refreshes its copy every ``OPENS_SUPPRESSION_REFRESH_SECONDS``, drops a
listed subscriber's hits before dedupe, writes tombstones over their state, and scrubs the state
of newly listed subscribers in the partitions it owns; ``--direct`` backfill reads the list before
each insert. Every dropped hit is counted (``opens_suppressed_hits_total{path}``) and logged per
batch. A stale copy can only delay the state scrub, never let a hit into ClickHouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import Any

from processor.core.hit import Hit

# The newest change per subscriber wins; of two in the same millisecond, "forgotten" does.
# The same query as the view in migration 0010.
SUPPRESSED_SQL = (
    "SELECT sid FROM {db:Identifier}.forgotten_subscribers GROUP BY sid "
    "HAVING argMax(forgotten, (changed_at, forgotten)) = 1"
)


def load_suppressed(client: Any, database: str) -> frozenset[str]:
    """Every subscriber currently on the suppression list."""
    rows = client.query(SUPPRESSED_SQL, parameters={"db": database}).result_rows
    return frozenset(str(r[0]) for r in rows)


@dataclass
class Split:
    """``kept``: hits to go on; ``dropped``: how many were suppressed; ``sids``: whose."""

    kept: list[Hit] = field(default_factory=list)
    dropped: int = 0
    sids: set[str] = field(default_factory=set)


def split_suppressed(hits: Iterable[Hit], suppressed: Set[str]) -> Split:
    """Pure: separate the hits of suppressed subscribers (a set lookup per hit)."""
    out = Split()
    if not suppressed:
        out.kept = list(hits)
        return out
    for h in hits:
        sid = h.sid or ""
        if sid in suppressed:
            out.dropped += 1
            out.sids.add(sid)
        else:
            out.kept.append(h)
    return out
