"""What a backfill run reports: its totals (``BackfillSummary``) and progress as it goes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from processor.backfill.manifest import ManifestEntry

__all__ = ["BackfillSummary", "Progress"]


@dataclass
class BackfillSummary:
    """Totals of one run; ``problems`` lists ``object: reason@line`` for every skipped part.

    The totals are those of the objects finished — read to the end, or up to a damage in their
    bytes (``incomplete``: recorded with the reason, kept by later runs). An object whose reading
    stopped on a read error is only listed in ``pending`` (``object: reason``): not recorded, its
    numbers belong to the run that finishes it.
    """

    listed: int = 0
    skipped_done: int = 0
    objects: int = 0
    lines: int = 0
    hits: int = 0
    bad_lines: int = 0
    outside_window: int = 0
    incomplete: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    already_damaged: list[str] = field(default_factory=list)  # skipped: recorded damaged before
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Nothing was skipped: no bad line, no object read short, none left pending."""
        return self.bad_lines == 0 and self.incomplete == 0 and not self.pending

    def add(self, entry: ManifestEntry) -> None:
        if entry.pending:
            self.pending.append(f"{entry.object}: {entry.stopped}")
            return
        self.objects += 1
        self.lines += entry.lines
        self.hits += entry.hits
        self.bad_lines += entry.bad_lines
        self.outside_window += entry.outside_window
        self.incomplete += 0 if entry.complete else 1
        self.failures.update(entry.failures)
        self.problems.extend(f"{entry.object}: {ex}" for ex in entry.examples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects_listed": self.listed,
            "objects_already_done": self.skipped_done,
            "objects_already_damaged": len(self.already_damaged),
            "objects_processed": self.objects,
            "lines": self.lines,
            "hits": self.hits,
            "bad_lines": self.bad_lines,
            "hits_outside_window": self.outside_window,
            "incomplete_objects": self.incomplete,  # damaged: loaded up to the damage, recorded
            "objects_pending": len(self.pending),
            "pending": self.pending,
            "already_damaged": self.already_damaged,
            "failures": dict(self.failures),
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.lines / self.seconds) if self.seconds else 0,
        }


class Progress:
    """What ``run_backfill`` reports as it goes (``progress`` renders it)."""

    def start(self, objects: int, total_bytes: int) -> None: ...

    def lines(self, n: int) -> None: ...

    def object_done(self, entry: ManifestEntry) -> None:
        """An object recorded in the manifest — or, ``entry.pending``, given up for this run."""

    def close(self, summary: BackfillSummary) -> None: ...
