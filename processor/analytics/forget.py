"""`opens forget --sid S`: erase one subscriber everywhere, keeping aggregates consistent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYNC = {"mutations_sync": 2, "lightweight_deletes_sync": 2}


@dataclass(frozen=True)
class Forgotten:
    hits: int
    first_opens: int
    minutes_rebuilt: int


def forget_subscriber(client: Any, database: str, sid: str) -> Forgotten:
    """Delete the subscriber's raw hits and first opens, then rebuild the per-minute aggregate
    rows those hits touched from the hits that remain.

    The aggregates hold request-id sets, never subscriber ids; rebuilding the touched minutes
    removes the subscriber's requests from them too. A minute whose raw hits already expired
    (``OPENS_HITS_TTL_DAYS``) cannot be rebuilt: its anonymous counts stay as they were.
    """
    p = {"db": database, "sid": sid}
    n_hits = int(
        client.command(
            "SELECT count() FROM {db:Identifier}.hits FINAL WHERE sid = {sid:String}", parameters=p
        )
    )
    n_first = int(
        client.command(
            "SELECT count() FROM (SELECT cid FROM {db:Identifier}.first_opens "
            "WHERE sid = {sid:String} GROUP BY cid)",
            parameters=p,
        )
    )
    keys = client.query(
        "SELECT DISTINCT cid, toStartOfMinute(ts) FROM {db:Identifier}.hits "
        "WHERE sid = {sid:String}",
        parameters=p,
    ).result_rows
    client.command(
        "DELETE FROM {db:Identifier}.hits WHERE sid = {sid:String}", parameters=p, settings=SYNC
    )
    client.command(
        "ALTER TABLE {db:Identifier}.first_opens DELETE WHERE sid = {sid:String}",
        parameters=p,
        settings=SYNC,
    )
    if keys:
        kp = {"db": database, "keys": [(k[0], k[1]) for k in keys]}
        client.command(
            "ALTER TABLE {db:Identifier}.opens_by_minute DELETE "
            "WHERE (cid, minute) IN {keys:Array(Tuple(String, DateTime('UTC')))}",
            parameters=kp,
            settings=SYNC,
        )
        # Same expressions as the materialized view (migration 0003), over what remains.
        client.command(
            "INSERT INTO {db:Identifier}.opens_by_minute "
            "SELECT cid, client, device, country, toStartOfMinute(ts) AS minute, max(cat), "
            "uniqExactStateIf(request_id, signature != 'invalid'), "
            "uniqExactStateIf(request_id, signature != 'invalid' AND machine = ''), "
            "uniqExactStateIf(request_id, signature != 'invalid' AND machine != ''), "
            "uniqExactStateIf(request_id, signature = 'invalid') "
            "FROM {db:Identifier}.hits "
            "WHERE (cid, toStartOfMinute(ts)) IN {keys:Array(Tuple(String, DateTime('UTC')))} "
            "GROUP BY cid, client, device, country, minute",
            parameters=kp,
        )
    return Forgotten(hits=n_hits, first_opens=n_first, minutes_rebuilt=len(keys))
