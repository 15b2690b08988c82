"""Progress of a backfill: a bar on a terminal, JSON lines on stderr when piped (DESIGN §4)."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from processor.backfill.manifest import ManifestEntry
from processor.backfill.summary import BackfillSummary, Progress

__all__ = ["JsonProgress", "TerminalProgress", "make_progress"]


class JsonProgress(Progress):
    """One JSON object per finished object (``"event": "object"``), a ``"progress"`` line at
    most every ``every`` seconds, and a final ``"summary"`` — for logs and for machines."""

    def __init__(self, out: IO[str], every: float = 1.0) -> None:
        self.out = out
        self.every = every
        self.total = 0
        self.done = 0
        self.seen_lines = 0
        self.started = time.perf_counter()
        self.last = 0.0

    def _emit(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def start(self, objects: int, total_bytes: int) -> None:
        self.total = objects
        self.started = time.perf_counter()
        self._emit({"event": "start", "objects": objects, "bytes": total_bytes})

    def lines(self, n: int) -> None:
        self.seen_lines += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            self._emit(
                {
                    "event": "progress",
                    "objects_done": self.done,
                    "objects": self.total,
                    "lines": self.seen_lines,
                    "lines_per_second": round(self.seen_lines / elapsed),
                }
            )

    def object_done(self, entry: ManifestEntry) -> None:
        self.done += 1
        event: dict[str, Any] = {
            "event": "object",
            "object": entry.object,
            "lines": entry.lines,
            "hits": entry.hits,
            "bad_lines": entry.bad_lines,
            "complete": entry.complete,
            "objects_done": self.done,
            "objects": self.total,
        }
        if entry.pending:  # not recorded: the next run reads it again
            event.update(event="object_pending", reason=entry.stopped)
        self._emit(event)

    def close(self, summary: BackfillSummary) -> None:
        self._emit({"event": "summary", **summary.as_dict()})


class TerminalProgress(Progress):
    """A rich progress bar: objects recorded, lines/s, ETA (by objects)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        from processor.cli.output import err_console

        self.bar = Bar(
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("objects · {task.fields[rate]:,.0f} lines/s"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.task: Any = None
        self.seen_lines = 0
        self.started = time.perf_counter()

    def start(self, objects: int, total_bytes: int) -> None:
        self.started = time.perf_counter()
        self.bar.start()
        self.task = self.bar.add_task("backfill", total=objects, rate=0.0)

    def lines(self, n: int) -> None:
        self.seen_lines += n
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, rate=self.seen_lines / elapsed)

    def object_done(self, entry: ManifestEntry) -> None:
        self.bar.advance(self.task)

    def close(self, summary: BackfillSummary) -> None:
        self.bar.stop()


def make_progress(terminal: bool | None = None) -> Progress:
    if terminal is None:
        terminal = sys.stderr.isatty()
    return TerminalProgress() if terminal else JsonProgress(sys.stderr)
