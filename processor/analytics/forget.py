"""`opens forget --sid S` / `opens unforget --sid S`: erase one subscriber for good, or allow
their hits again.

Forgetting puts the subscriber on the suppression list first, so that no later write brings them
back (processor.suppression explains the mechanism and the race with writers in flight), then
erases what is stored: their raw hits and per-subscriber state. The days those hits fell on are
marked changed, so the views count them from the remaining rows until they are sealed again
(processor.sinks.clickhouse.seal): every number stays exact for everyone else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from processor.errors import OpensError
from processor.sinks.clickhouse.seal import mark_changed

SYNC = {"mutations_sync": 2, "lightweight_deletes_sync": 2}
PASSES = 3  # delete passes before giving up on rows that keep reappearing


@dataclass(frozen=True)
class Forgotten:
    hits: int
    first_opens: int
    days_recounted: int
    waited_for_inserts: int = 0


def suppress(client: Any, database: str, sid: str, *, forgotten: bool = True) -> None:
    """Add ``sid`` to the suppression list (or, ``forgotten=False``, take it off)."""
    client.insert(
        "forgotten_subscribers",
        [[sid, int(forgotten)]],
        column_names=["sid", "forgotten"],
        database=database,
    )


def is_suppressed(client: Any, database: str, sid: str) -> bool:
    return bool(
        client.command(
            "SELECT count() FROM (SELECT sid FROM {db:Identifier}.forgotten_subscribers "
            "WHERE sid = {sid:String} GROUP BY sid "
            "HAVING argMax(forgotten, (changed_at, forgotten)) = 1)",
            parameters={"db": database, "sid": sid},
        )
    )


def wait_for_inserts(client: Any, *, timeout: float, poll: float = 0.05) -> int:
    """Wait until every INSERT running now has finished; returns how many there were.

    Called right after the suppression row is written: an insert that started earlier may have
    read the list without it. Inserts that start later read it, so they need no waiting for.
    """
    running = {
        str(r[0])
        for r in client.query(
            "SELECT query_id FROM system.processes WHERE query_kind = 'Insert'"
        ).result_rows
    }
    deadline = time.monotonic() + timeout
    left = running
    while left:
        if time.monotonic() > deadline:
            msg = f"{len(left)} insert(s) still running after {timeout:.0f}s"
            raise OpensError(
                msg,
                hint="the subscriber is on the suppression list; run `opens forget` again "
                "to finish erasing",
            )
        time.sleep(poll)
        left = running & {
            str(r[0])
            for r in client.query(
                "SELECT query_id FROM system.processes WHERE query_kind = 'Insert'"
            ).result_rows
        }
    return len(running)


def forget_subscriber(
    client: Any, database: str, sid: str, *, insert_timeout: float = 120.0
) -> Forgotten:
    """Suppress ``sid``, wait for inserts in flight, then erase: see the module docstring."""
    suppress(client, database, sid)
    waited = wait_for_inserts(client, timeout=insert_timeout)
    hits = firsts = days = 0
    for _ in range(PASSES):
        done = erase_subscriber(client, database, sid)
        hits += done.hits
        firsts += done.first_opens
        days += done.days_recounted
        if not _left(client, database, sid):
            return Forgotten(hits, firsts, days, waited)
    msg = f"rows of subscriber {sid!r} reappeared after {PASSES} erasures"
    raise OpensError(msg, hint="a writer bypasses hits_ingest; find it, then forget again")


def unforget_subscriber(client: Any, database: str, sid: str) -> bool:
    """Take ``sid`` off the suppression list; ``False`` if it was not on it. What was erased
    stays erased: only hits written from now on (a new open, a backfill) count again."""
    if not is_suppressed(client, database, sid):
        return False
    suppress(client, database, sid, forgotten=False)
    return True


def _left(client: Any, database: str, sid: str) -> int:
    p = {"db": database, "sid": sid}
    return int(
        client.command(
            "SELECT (SELECT count() FROM {db:Identifier}.hits WHERE sid = {sid:String}) + "
            "(SELECT count() FROM {db:Identifier}.opener_state WHERE sid = {sid:String})",
            parameters=p,
        )
    )


def erase_subscriber(client: Any, database: str, sid: str) -> Forgotten:
    """Delete the subscriber's raw hits and opener state, and mark the days of those hits
    changed (before and after the delete, so no seal taken meanwhile is read as current).

    Sealed counts hold no subscriber ids; the marked days are counted from the remaining rows
    until sealed again. A day whose raw hits already expired (``OPENS_HITS_TTL_DAYS``) keeps
    its sealed anonymous counts.
    """
    p = {"db": database, "sid": sid}
    n_hits = int(
        client.command(
            "SELECT count() FROM {db:Identifier}.hits FINAL WHERE sid = {sid:String}", parameters=p
        )
    )
    n_first = int(
        client.command(
            "SELECT count() FROM (SELECT cid FROM {db:Identifier}.opener_state "
            "WHERE sid = {sid:String} GROUP BY cid)",
            parameters=p,
        )
    )
    days = [
        r[0]
        for r in client.query(
            "SELECT DISTINCT toDate(ts) FROM {db:Identifier}.hits WHERE sid = {sid:String}",
            parameters=p,
        ).result_rows
    ]
    mark_changed(client, database, days)
    client.command(
        "DELETE FROM {db:Identifier}.hits WHERE sid = {sid:String}", parameters=p, settings=SYNC
    )
    client.command(
        "ALTER TABLE {db:Identifier}.opener_state DELETE WHERE sid = {sid:String}",
        parameters=p,
        settings=SYNC,
    )
    mark_changed(client, database, days)
    return Forgotten(hits=n_hits, first_opens=n_first, days_recounted=len(days))
