"""Sealing: a quiet day's request counts computed once from its canonical rows (migration 0011).

Views read a day from ``sealed_counts`` only while its seal is newer than the day's last change,
and count it from ``hits FINAL`` otherwise, so sealing never changes a number: it only makes
reading a month cheap. A seal's ``as_of`` is the time its snapshot began *minus a margin*: an
insert still running when the snapshot was taken stamped its day at a time after ``as_of`` (its
materialized view ran before it committed), so the day reads as changed and is counted live,
unless an insert lasted longer than the margin.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

MARGIN_SECONDS = 300

# One pass over the day's canonical rows, four groupings. grouping(x) = 1 when x is not part of
# the row's grouping set.
_SEAL = """
INSERT INTO {db:Identifier}.{staging:Identifier}
    (day, as_of, kind, cid, minute, client, device, country, machine, opens, human_opens,
     machine_opens, invalid_hits, probable_opens)
SELECT
    toDate({day:String}) AS day,
    {as_of:DateTime64(3)} AS as_of,
    multiIf(grouping(minute) = 0, 'minute', grouping(client) = 0, 'client',
            grouping(country) = 0, 'country', 'machine') AS kind,
    cid, minute, client, device, country, machine,
    countIf(signature != 'invalid') AS opens,
    countIf(signature != 'invalid' AND machine = '') AS human_opens,
    countIf(signature != 'invalid' AND machine != '') AS machine_opens,
    countIf(signature = 'invalid') AS invalid_hits,
    countIf(signature != 'invalid' AND machine != '' AND certainty = 'probable') AS probable_opens
FROM (
    SELECT cid, toStartOfMinute(ts) AS minute, client, device, country, machine, signature,
           certainty
    FROM {db:Identifier}.hits FINAL
    WHERE toYYYYMMDD(ts) = toYYYYMMDD(toDate({day:String}))
)
GROUP BY GROUPING SETS ((cid, minute), (cid, client, device), (cid, country), (cid, machine))
SETTINGS do_not_merge_across_partitions_select_final = 1
"""


# Before migration 0012 `sealed_counts` has no probable_opens (a sealer of this version on a
# database not yet migrated, e.g. during a rolling upgrade).
_SEAL_BEFORE_0012 = (
    _SEAL.replace(", probable_opens)", ")")
    .replace(
        ",\n    countIf(signature != 'invalid' AND machine != '' AND certainty = 'probable') AS "
        "probable_opens",
        "",
    )
    .replace(",\n           certainty", "")
)


def _seal_sql(client: Any, database: str) -> str:
    has = client.command(
        "SELECT count() FROM system.columns WHERE database = {db:String} "
        "AND table = 'sealed_counts' AND name = 'probable_opens'",
        parameters={"db": database},
    )
    return _SEAL if int(has) else _SEAL_BEFORE_0012


@dataclass(frozen=True)
class Sealed:
    days: list[date]
    rows: int


def days_to_seal(client: Any, database: str, as_of: datetime) -> list[date]:
    """Days counted live whose last change is older than ``as_of``."""
    rows = client.query(
        "SELECT day FROM {db:Identifier}.live_days WHERE day IN ("
        "SELECT day FROM {db:Identifier}.day_changes GROUP BY day "
        "HAVING max(changed_at) < {as_of:DateTime64(3)}) ORDER BY day",
        parameters={"db": database, "as_of": as_of},
    ).result_rows
    return [r[0] for r in rows]


def seal_day(client: Any, database: str, day: date, as_of: datetime) -> int:
    """Replace the day's partition of ``sealed_counts`` with counts of its rows now; returns
    the number of count rows. Each call stages in a table of its own, so two sealers running
    at once cannot mix their rows (the last swap wins, whole)."""
    # DDL takes no bound identifiers: both names are ours (a validated database name, a hex id).
    name = f"sealed_counts_staging_{uuid.uuid4().hex[:12]}"
    db, staging = f"`{database}`", f"`{name}`"
    client.command(f"CREATE TABLE {db}.{staging} AS {db}.sealed_counts")
    try:
        p = {"db": database, "staging": name}
        client.command(
            _seal_sql(client, database), parameters={**p, "day": day.isoformat(), "as_of": as_of}
        )
        n = int(
            client.command("SELECT count() FROM {db:Identifier}.{staging:Identifier}", parameters=p)
        )
        if n:
            client.command(
                f"ALTER TABLE {db}.sealed_counts REPLACE PARTITION '{day.isoformat()}' "
                f"FROM {db}.{staging}"
            )
        else:  # nothing left that day (a forgotten subscriber's only day): no seal, no rows
            client.command(f"ALTER TABLE {db}.sealed_counts DROP PARTITION '{day.isoformat()}'")
        return n
    finally:
        client.command(f"DROP TABLE IF EXISTS {db}.{staging}")


def seal_quiet_days(
    client: Any,
    database: str,
    *,
    margin_seconds: int = MARGIN_SECONDS,
    on_day: Callable[[date, int], None] | None = None,
    settle: Callable[[], object] | None = None,
) -> Sealed:
    """Seal every day that is counted live and has not changed for ``margin_seconds``.

    ``settle`` runs once the seals' time is fixed and before any snapshot: waiting there for the
    inserts running at that time makes the margin unnecessary.
    """
    as_of: datetime = client.query(
        "SELECT now64(3) - toIntervalSecond({m:UInt32})", parameters={"m": margin_seconds}
    ).result_rows[0][0]
    if settle:
        settle()
    sealed, rows = [], 0
    for day in days_to_seal(client, database, as_of):
        n = seal_day(client, database, day, as_of)
        sealed.append(day)
        rows += n
        if on_day:
            on_day(day, n)
    return Sealed(sealed, rows)


def mark_changed(client: Any, database: str, days: list[date]) -> None:
    """Record a change on ``days`` made without an insert into ``hits`` (a delete, a rewrite),
    so their seals stop being read until they are sealed again."""
    if days:
        client.command(
            "INSERT INTO {db:Identifier}.day_changes "
            "SELECT arrayJoin({days:Array(Date)}), now64(3)",
            parameters={"db": database, "days": days},
        )
