"""`opens reclassify [--since T] [--campaign C]`: today's machine-open rules over stored hits.

Every view must then read as if the rules had always been these, exactly, and a second run must
change nothing. How, given migration 0011's data model:

1. **Canonical rows.** Each request's canonical row (``hits FINAL``) is decided again
   (``Classifier.retag``: stored agent, method, referer; ASN and prefetch flag from ``signals``;
   the address looked up in today's lists as far as ``OPENS_IP_PRIVACY`` kept it) plus the
   timing rule against the campaign's send time. Only rows whose ``machine``, ``proxy``,
   ``certainty``, ``rules_version`` or ``signals`` change are written.
2. **Rewrite by re-insert.** A changed row is inserted again, through ``hits_ingest`` (so the
   suppression list still applies), with every column as stored — the same ``ts``, ``source``
   and ``country``, hence the same ``version`` — and its original ``ingested_at`` (so freshness
   does not move). ``hits`` is a ReplacingMergeTree(version): of rows with equal versions the
   last inserted is kept, by merges and by ``FINAL``, so the new verdict replaces the old one.
   Copies of a request that are not canonical keep their old verdict until merges remove them;
   no view reads them (views read ``hits FINAL`` and ``opener_state``, rebuilt below).
3. **Per-subscriber state.** ``opener_state`` holds min/max aggregates that cannot be undone by
   a new row (a human open turned machine would keep its ``human_key``), so the state of every
   affected (campaign, subscriber) is deleted and rebuilt from their canonical rows, with the
   expressions of migration 0011's and 0012's views.
4. **Sealed counts.** The days of changed rows are marked changed in ``day_changes`` before and
   after the rewrite (like ``opens forget``), so their seals are not read until sealed again.

Limits: run it while writers are quiet for the affected campaigns (a hit arriving for an
affected subscriber between step 3's delete and rebuild is kept in ``hits`` but its state row may
be lost until the next reclassify). A day whose raw hits expired keeps its sealed counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from processor.core.classify import Classifier, Tag, timing_tag
from processor.core.egress import EgressRanges, apple_egress_path
from processor.sinks.clickhouse.seal import mark_changed
from processor.sinks.clickhouse.sink import HIT_COLUMNS, INGEST_TABLE, INSERT_SETTINGS

__all__ = ["Reclassified", "reclassify"]

SYNC = {"mutations_sync": 2}
# Columns read back, in HIT_COLUMNS order, then ingested_at; times as epoch milliseconds.
_SELECT = (
    ", ".join("toUnixTimestamp64Milli(ts)" if c == "ts" else c for c in HIT_COLUMNS)
    + ", toUnixTimestamp64Milli(ingested_at)"
)
_I = {name: i for i, name in enumerate(HIT_COLUMNS)}

_REBUILD = """
INSERT INTO {db:Identifier}.opener_state
    (cid, sid, cat, first_key, last_key, human_key, attribution, machines, lenient_key)
SELECT
    cid, sid, cat, order_key,
    bitOr(bitAnd(order_key, bitNot(toUInt64(3072))), bitShiftLeft(toUInt64(quality), 10)),
    if(machine = '', order_key, toUInt64(18446744073709551615)),
    (bitOr(bitShiftLeft(toUInt64(machine != ''), 63), order_key),
     toString(client), toString(device), toString(country)),
    if(machine = '', CAST([], 'Array(String)'), [toString(machine)]),
    if(machine = '' OR certainty = 'probable', order_key, toUInt64(18446744073709551615))
FROM {db:Identifier}.hits FINAL
WHERE signature != 'invalid' AND (cid, sid) IN {pairs:Array(Tuple(String, String))}
SETTINGS do_not_merge_across_partitions_select_final = 1
"""


@dataclass
class Reclassified:
    """What moved: ``moves[(from, to)]`` counts requests (``human`` for a person)."""

    examined: int = 0
    changed: int = 0
    subscribers: int = 0
    days: list[date] = field(default_factory=list)
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [
            f"{n:,} opens {src} → {dst}"
            for (src, dst), n in sorted(self.moves.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return out or ["nothing moved"]


def _label(machine: str, certainty: str) -> str:
    if not machine:
        return "human"
    return f"{machine} ({certainty})" if certainty == "probable" else machine


def send_times(client: Any, database: str) -> dict[str, int]:
    """Each campaign's earliest send time in epoch ms (its latest ``opens sends load``)."""
    rows = client.query(
        "SELECT campaign, toUnixTimestamp64Milli(toDateTime64(min(sent_at), 3)) "
        "FROM {db:Identifier}.current_sends GROUP BY campaign",
        parameters={"db": database},
    ).result_rows
    return {str(r[0]): int(r[1]) for r in rows}


def _days(client: Any, database: str, since: datetime | None, campaign: str | None) -> list[date]:
    rows = client.query(
        "SELECT DISTINCT toDate(ts) AS d FROM {db:Identifier}.hits WHERE "
        "({since:Nullable(DateTime64(3))} IS NULL OR ts >= {since:Nullable(DateTime64(3))}) "
        "AND ({cid:Nullable(String)} IS NULL OR cid = {cid:Nullable(String)}) ORDER BY d",
        parameters={"db": database, "since": since, "cid": campaign},
    ).result_rows
    return [r[0] for r in rows]


def _day_rows(
    client: Any, database: str, day: date, since: datetime | None, campaign: str | None
) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = client.query(
        f"SELECT {_SELECT} FROM {{db:Identifier}}.hits FINAL "  # noqa: S608 - fixed columns
        "WHERE toDate(ts) = {day:Date} "
        "AND ({since:Nullable(DateTime64(3))} IS NULL OR ts >= {since:Nullable(DateTime64(3))}) "
        "AND ({cid:Nullable(String)} IS NULL OR cid = {cid:Nullable(String)}) "
        "SETTINGS do_not_merge_across_partitions_select_final = 1",
        parameters={"db": database, "day": day, "since": since, "cid": campaign},
    ).result_rows
    return rows


class _Decider:
    def __init__(
        self, classifier: Classifier, privacy: str, sends: dict[str, int], window_ms: int
    ) -> None:
        self.classifier = classifier
        self.privacy = privacy
        self.sends = sends
        self.window_ms = window_ms

    def __call__(self, row: tuple[Any, ...]) -> Tag:
        tag = self.classifier.retag(
            row[_I["user_agent"]],
            row[_I["method"]],
            row[_I["client_ip"]],
            row[_I["referer"]],
            row[_I["signals"]],
            self.privacy,
        )
        sent = self.sends.get(row[_I["cid"]])
        return timing_tag(tag, int(row[_I["ts"]]), sent, self.window_ms)


def _changed(row: tuple[Any, ...], tag: Tag) -> tuple[Any, ...] | None:
    machine, proxy, certainty, version, signals = tag
    old = tuple(row[_I[c]] for c in ("machine", "proxy", "certainty", "rules_version", "signals"))
    if old == (machine or "", proxy, certainty, version, signals):
        return None
    new = list(row)
    new[_I["machine"]], new[_I["proxy"]] = machine or "", proxy
    new[_I["certainty"]], new[_I["rules_version"]], new[_I["signals"]] = (
        certainty,
        version,
        signals,
    )
    return tuple(new)


def _rewrite(client: Any, database: str, rows: list[tuple[Any, ...]]) -> None:
    columns = [list(col) for col in zip(*rows, strict=True)]
    client.insert(
        INGEST_TABLE,
        columns,
        column_names=[*HIT_COLUMNS, "ingested_at"],
        database=database,
        column_oriented=True,
        settings=INSERT_SETTINGS,
    )


def _rebuild(client: Any, database: str, pairs: Iterable[tuple[str, str]]) -> None:
    todo = sorted(pairs)
    for i in range(0, len(todo), 5000):
        chunk = todo[i : i + 5000]
        p = {"db": database, "pairs": chunk}
        client.command(
            "ALTER TABLE {db:Identifier}.opener_state DELETE "
            "WHERE (cid, sid) IN {pairs:Array(Tuple(String, String))}",
            parameters=p,
            settings=SYNC,
        )
        client.command(_REBUILD, parameters=p)


def reclassify(
    client: Any,
    database: str,
    *,
    data_dir: Path | None,
    privacy: str,
    window_seconds: float,
    since: datetime | None = None,
    campaign: str | None = None,
    on_day: Callable[[date, int], None] | None = None,
) -> Reclassified:
    """Re-run today's rules over the stored hits of ``since``/``campaign`` (module docstring)."""
    classifier = Classifier(
        lambda: EgressRanges.from_file(apple_egress_path(data_dir)), data_dir=data_dir
    )
    decide = _Decider(classifier, privacy, send_times(client, database), int(window_seconds * 1000))
    done = Reclassified()
    pairs: set[tuple[str, str]] = set()
    for day in _days(client, database, since, campaign):
        rows = _day_rows(client, database, day, since, campaign)
        changed = []
        for row in rows:
            new = _changed(row, decide(row))
            if new is None:
                continue
            changed.append(new)
            src = _label(row[_I["machine"]], row[_I["certainty"]])
            dst = _label(new[_I["machine"]], new[_I["certainty"]])
            if src != dst and row[_I["signature"]] != "invalid":
                done.moves[(src, dst)] += 1
            pairs.add((row[_I["cid"]], row[_I["sid"]]))
        done.examined += len(rows)
        if changed:
            mark_changed(client, database, [day])
            _rewrite(client, database, changed)
            done.changed += len(changed)
            done.days.append(day)
        if on_day is not None:
            on_day(day, len(changed))
    _rebuild(client, database, pairs)
    mark_changed(client, database, done.days)
    done.subscribers = len(pairs)
    return done
