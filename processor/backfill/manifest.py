"""The manifest: which objects are finished, and what each one held (``backfill_manifest``).

A row is written after the object's hits are safely delivered (see ``sinks``), never before, so
a crash leaves the object without a row and the next run redoes it from its first line — which is
harmless, because hits are keyed by request id and every aggregate is idempotent.

With ``--since/--until`` only the hits inside the window are delivered; a row that left some out
(``outside_window``) records its window and counts as finished only for windows inside it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DAMAGE_REASONS",
    "MANIFEST_COLUMNS",
    "Done",
    "ManifestEntry",
    "covers",
    "damaged_objects",
    "finished_objects",
    "insert_entries",
]

MANIFEST_COLUMNS: tuple[str, ...] = (
    "object",
    "etag",
    "size",
    "format",
    "mode",
    "lines",
    "hits",
    "bad_lines",
    "complete",
    "failures",
    "examples",
    "outside_window",
    "since",
    "until",
)

Window = tuple[datetime | None, datetime | None]
Done = dict[tuple[str, str], list[Window]]
"""``(object, etag)`` → the windows it was finished for (``(None, None)``: all of it)."""


@dataclass
class ManifestEntry:
    """What one object held. ``complete`` is false when reading stopped early; ``examples`` are
    ``reason@line`` (line 0: the whole object).

    Why it stopped decides whether the object is done. Damaged bytes (corrupt or truncated gzip,
    an unknown layout) give the same result on every read: the entry is recorded, incomplete,
    and later runs keep it (a new ETag — the object replaced — or ``--force`` reads it again).
    A read that failed on the way (``pending``; ``stopped`` says where and why) is never
    recorded: the object stays pending and the next run reads it from its first line.
    """

    object: str
    etag: str
    size: int
    format: str
    mode: str
    lines: int = 0
    hits: int = 0
    complete: bool = True
    failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    outside_window: int = 0
    since: datetime | None = None
    until: datetime | None = None
    pending: bool = False  # not a column: a pending entry gets no row
    stopped: str = ""

    @property
    def bad_lines(self) -> int:
        return sum(self.failures.values())

    def row(self) -> list[Any]:
        return [
            self.object,
            self.etag,
            self.size,
            self.format,
            self.mode,
            self.lines,
            self.hits,
            self.bad_lines,
            int(self.complete),
            dict(self.failures),
            self.examples,
            self.outside_window,
            self.since if self.outside_window else None,
            self.until if self.outside_window else None,
        ]


# Reasons an incomplete row is still finished: the object's own bytes are bad (``ManifestEntry``).
DAMAGE_REASONS: tuple[str, ...] = ("corrupt_gzip", "truncated", "unknown_layout")


def finished_objects(client: Any, database: str) -> Done:
    """Every finished ``(object, etag)`` with the windows it was finished for.

    A row that is incomplete for another reason than damage (``read_error``: written by versions
    before issue #14 for a read that failed on the way) is not finished: the object is read again.
    """
    rows = client.query(
        "SELECT DISTINCT object, etag, outside_window = 0, since, until"
        " FROM {db:Identifier}.backfill_manifest"
        " WHERE complete = 1 OR hasAny(mapKeys(failures), {damage:Array(String)})",
        parameters={"db": database, "damage": list(DAMAGE_REASONS)},
    ).result_rows
    done: Done = {}
    for obj, etag, whole, since, until in rows:
        window: Window = (None, None) if whole else (_utc(since), _utc(until))
        done.setdefault((str(obj), str(etag)), []).append(window)
    return done


def damaged_objects(client: Any, database: str) -> dict[tuple[str, str], str]:
    """``(object, etag)`` → where its damage is (``truncated@987``), for objects recorded so."""
    rows = client.query(
        "SELECT object, etag, arrayStringConcat(examples, ' ')"
        " FROM {db:Identifier}.backfill_manifest FINAL"
        " WHERE complete = 0 AND hasAny(mapKeys(failures), {damage:Array(String)})",
        parameters={"db": database, "damage": list(DAMAGE_REASONS)},
    ).result_rows
    return {(str(obj), str(etag)): str(where) for obj, etag, where in rows}


def _utc(value: datetime | None) -> datetime | None:
    # The client returns DateTime64(3, 'UTC') naive in some versions; it is UTC either way.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def covers(done: list[Window], since: datetime | None, until: datetime | None) -> bool:
    """Whether a run over ``[since, until)`` finds nothing new in an object done for ``done``."""
    for lo, hi in done:
        starts_before = lo is None or (since is not None and lo <= since)
        ends_after = hi is None or (until is not None and until <= hi)
        if starts_before and ends_after:
            return True
    return False


def insert_entries(client: Any, database: str, entries: list[ManifestEntry]) -> None:
    if entries:
        client.insert(
            "backfill_manifest",
            [e.row() for e in entries],
            column_names=list(MANIFEST_COLUMNS),
            database=database,
        )
