"""The manifest: which objects are finished, and what each one held (``backfill_manifest``).

A row is written after the object's hits are safely delivered (see ``sinks``), never before, so
a crash leaves the object without a row and the next run redoes it from its first line — which is
harmless, because hits are keyed by request id and every aggregate is idempotent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MANIFEST_COLUMNS", "ManifestEntry", "finished_objects", "insert_entries"]

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
)


@dataclass
class ManifestEntry:
    """What one object held. ``complete`` is false when reading stopped early (corrupt gzip,
    truncated object, unknown layout); ``examples`` are ``reason@line`` (line 0: the whole
    object)."""

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
        ]


def finished_objects(client: Any, database: str) -> set[tuple[str, str]]:
    """``(object, etag)`` of every finished object."""
    rows = client.query(
        "SELECT DISTINCT object, etag FROM {db:Identifier}.backfill_manifest",
        parameters={"db": database},
    ).result_rows
    return {(str(r[0]), str(r[1])) for r in rows}


def insert_entries(client: Any, database: str, entries: list[ManifestEntry]) -> None:
    if entries:
        client.insert(
            "backfill_manifest",
            [e.row() for e in entries],
            column_names=list(MANIFEST_COLUMNS),
            database=database,
        )
