"""The backfill pipeline: list → read (background thread) → decode in batches → writer thread.

``run_backfill`` is transport-agnostic: ``--direct`` and the default Kafka mode differ only in
the ``Delivery`` the writer thread uses (``sinks``). Every line of every object gets exactly one
outcome — a hit, a skipped line (header, other path, not countable) or a failure counted by
reason with its line number — and a damaged object never stops the run.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, cast

from processor.backfill.manifest import ManifestEntry, finished_objects
from processor.backfill.sinks import Delivery, Writer
from processor.backfill.sources import LogObject, list_sources
from processor.backfill.stream import ChunkStream, ObjectReadError, RawReader
from processor.core.context import DecodeContext
from processor.core.hit import Hit, new_hit
from processor.core.logparse import LineDecoder, LogFormat, ParseSummary, decode_lines, line_decoder
from processor.core.reader import iter_lines
from processor.errors import OpensError

__all__ = ["BackfillOptions", "BackfillSummary", "DecoderFailed", "run_backfill", "sniff_format"]

BATCH = 20_000  # hits per hand-over to the writer thread
EXAMPLES_PER_OBJECT = 20


@dataclass(frozen=True)
class BackfillOptions:
    sources: list[str]
    since: datetime | None = None
    until: datetime | None = None
    force: bool = False
    mode: str = "direct"
    page_size: int = 1000


@dataclass
class BackfillSummary:
    """Totals of one run; ``problems`` lists ``object: reason@line`` for every skipped part."""

    listed: int = 0
    skipped_done: int = 0
    objects: int = 0
    lines: int = 0
    hits: int = 0
    bad_lines: int = 0
    incomplete: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Nothing was skipped: no bad line, no object read short."""
        return self.bad_lines == 0 and self.incomplete == 0

    def add(self, entry: ManifestEntry) -> None:
        self.objects += 1
        self.lines += entry.lines
        self.hits += entry.hits
        self.bad_lines += entry.bad_lines
        self.incomplete += 0 if entry.complete else 1
        self.failures.update(entry.failures)
        self.problems.extend(f"{entry.object}: {ex}" for ex in entry.examples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects_listed": self.listed,
            "objects_already_done": self.skipped_done,
            "objects_processed": self.objects,
            "lines": self.lines,
            "hits": self.hits,
            "bad_lines": self.bad_lines,
            "incomplete_objects": self.incomplete,
            "failures": dict(self.failures),
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.lines / self.seconds) if self.seconds else 0,
        }


def sniff_format(first_chunk: bytes) -> LogFormat | None:
    """The format of an object whose name says nothing, from its first non-blank line."""
    for raw in first_chunk[:65_536].split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith((b"#Version", b"#Fields")) or line.startswith(b"{"):
            return "standard"
        if b"\t" in line and line[:4].isdigit():
            return "standard"  # a headerless W3C line starts with its date
        parts = line.split(b" ", 3)
        if len(parts) >= 3 and parts[2].startswith(b"[") and len(parts[0]) >= 16:
            return "s3"  # bucket owner, bucket, [time …
        return None
    return None


class _Replay:
    """``read()`` that returns an already-read first chunk, then the rest of the stream.

    ``newlines`` counts the line ends handed out so far (a C-speed count per chunk): the
    progress of an object while it is being decoded.
    """

    def __init__(self, first: bytes, rest: ChunkStream) -> None:
        self._first: bytes | None = first
        self._rest = rest
        self.newlines = 0

    def read(self, n: int = -1, /) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                self.newlines += first.count(b"\n")
                return first
        data = self._rest.read(n)
        self.newlines += data.count(b"\n")
        return data


class _Decoders:
    """One stateful decoder per format, reused across objects (``new_file`` resets headers)."""

    def __init__(self, ctx: DecodeContext) -> None:
        self._ctx = ctx
        self._made: dict[str, tuple[LineDecoder, Callable[[], None]]] = {}

    def get(self, fmt: LogFormat) -> tuple[LineDecoder, Callable[[], None]]:
        found = self._made.get(fmt)
        if found is None:
            found = self._made[fmt] = line_decoder(fmt, self._ctx)
        return found


def decode_object(
    obj: LogObject,
    stream: ChunkStream,
    decoders: _Decoders,
    mode: str,
    emit: Callable[[list[Hit]], None],
    on_lines: Callable[[int], None] | None = None,
) -> ManifestEntry:
    """Decode one object to the end (or to the damage), handing hits to ``emit`` in batches."""
    entry = ManifestEntry(obj.uri, obj.etag, obj.size, obj.kind or "", mode)
    summary = ParseSummary()

    def fail(reason: str, line: int) -> None:
        entry.failures[reason] += 1
        if len(entry.examples) < EXAMPLES_PER_OBJECT:
            entry.examples.append(f"{reason}@{line}")

    try:
        first = stream.read()
    except ObjectReadError as exc:
        entry.complete = False
        fail(exc.reason, 0)
        return entry
    if not first:
        return entry  # an empty object: nothing to read, nothing skipped
    fmt: LogFormat | None = obj.kind or sniff_format(first)
    if fmt is None:
        entry.complete = False
        fail("unknown_layout", 0)
        return entry
    entry.format = fmt
    decode, new_file = decoders.get(fmt)
    new_file()
    batch: list[Hit] = []
    hits = 0
    reported = 0
    source = _Replay(first, stream)
    try:
        for hit in decode_lines(decode, iter_lines(cast(BinaryIO, source)), summary, obj.uri):
            if not hit.is_hit:
                continue  # the pixel path but not countable (POST, 404, no sid/cid): as real time
            batch.append(hit)
            if len(batch) >= BATCH:
                hits += len(batch)
                emit(batch)
                batch = []
                if on_lines is not None:
                    on_lines(source.newlines - reported)
                    reported = source.newlines
    except (ObjectReadError, OSError, EOFError) as exc:
        entry.complete = False
        reason = exc.reason if isinstance(exc, ObjectReadError) else "read_error"
        fail(reason, summary.lines + 1)
    if batch:
        hits += len(batch)
        emit(batch)
    if on_lines is not None:
        on_lines(summary.lines - reported)  # exact at the end (a last line needs no newline)
    entry.lines = summary.lines
    entry.hits = hits
    for reason, count in summary.failures.items():
        entry.failures[reason] += count
        for where in summary.examples.get(reason, []):
            if len(entry.examples) < EXAMPLES_PER_OBJECT:
                entry.examples.append(f"{reason}@{where.rsplit(':', 1)[-1]}")
    return entry


def _streams(
    objects: list[LogObject], opener: Callable[[LogObject], Callable[[], RawReader]], ahead: int
) -> Iterator[tuple[LogObject, ChunkStream]]:
    """Each object with its stream, the next ``ahead`` already downloading (bounded memory)."""
    started: list[tuple[LogObject, ChunkStream]] = []
    i = 0
    try:
        while i < len(objects) or started:
            while i < len(objects) and len(started) <= ahead:
                started.append((objects[i], ChunkStream(opener(objects[i]))))
                i += 1
            obj, stream = started.pop(0)
            try:
                yield obj, stream
            finally:
                stream.close()
    finally:
        for _, stream in started:
            stream.close()


class Progress:
    """What ``run_backfill`` reports as it goes (``progress`` renders it)."""

    def start(self, objects: int, total_bytes: int) -> None: ...

    def lines(self, n: int) -> None: ...

    def object_done(self, entry: ManifestEntry) -> None: ...

    def close(self, summary: BackfillSummary) -> None: ...


def run_backfill(
    options: BackfillOptions,
    *,
    ctx: DecodeContext,
    client: Any,
    database: str,
    delivery: Callable[[], Delivery],
    s3_client: Any = None,
    progress: Progress | None = None,
    read_ahead: int = 2,
    decode_process: bool = False,
) -> BackfillSummary:
    """Backfill every unfinished object of ``options.sources``; returns the run's totals.

    ``client`` reads and writes the manifest in ``database`` (the schema must be applied).
    ``decode_process`` decodes in a child process (``decoder``) so that decoding and writing
    run on two cores. Off by default: on the two-core machine this was measured on, with the
    embedded ClickHouse's own insert threads competing, it was not faster than decoding in this
    thread (``scripts/bench_backfill`` measures both in the same run).
    """
    started = time.perf_counter()
    progress = progress or Progress()
    summary = BackfillSummary()
    listed = list(
        list_sources(
            options.sources,
            s3_client=s3_client,
            since=options.since,
            until=options.until,
            page_size=options.page_size,
        )
    )
    summary.listed = len(listed)
    done = set() if options.force else finished_objects(client, database)
    todo = [o for o in listed if (o.uri, o.etag) not in done]
    summary.skipped_done = len(listed) - len(todo)
    progress.start(len(todo), sum(o.size for o in todo))
    writer = Writer(delivery, client, database, on_recorded=progress.object_done)
    try:
        if not todo:
            pass
        elif decode_process:
            _decode_in_child(todo, ctx, options.mode, read_ahead, writer, summary, progress)
        else:
            decoders = _Decoders(ctx)
            for obj, stream in _streams(todo, _default_opener(s3_client), read_ahead):
                entry = decode_object(
                    obj, stream, decoders, options.mode, writer.put_hits, progress.lines
                )
                summary.add(entry)
                writer.finished(entry)
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - started
    progress.close(summary)
    return summary


class DecoderFailed(OpensError):
    """The decoding process stopped before finishing; finished objects are in the manifest."""


def _decode_in_child(
    todo: list[LogObject],
    ctx: DecodeContext,
    mode: str,
    read_ahead: int,
    writer: Writer,
    summary: BackfillSummary,
    progress: Progress,
) -> None:
    from processor.backfill.decoder import Job, read_frames

    proc = subprocess.Popen(
        [sys.executable, "-m", "processor.backfill.decoder"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None  # noqa: S101 - PIPE given
    finished = False
    try:
        pickle.dump(Job(todo, ctx, mode, read_ahead), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.close()
        for kind, value in read_frames(proc.stdout):
            if kind == "hits":
                writer.put_hits([new_hit(*row) for row in value])
            elif kind == "lines":
                progress.lines(value)
            elif kind == "done":
                summary.add(value)
                writer.finished(value)
            elif kind == "end":
                finished = True
                break
            else:
                msg = f"decoding failed: {value}"
                raise DecoderFailed(msg, hint="re-run: finished objects are skipped")
    finally:
        if not finished:
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
    if not finished:
        msg = f"the decoding process ended early (exit status {code})"
        raise DecoderFailed(msg, hint="re-run: finished objects are skipped")


def _default_opener(s3_client: Any) -> Callable[[LogObject], Callable[[], RawReader]]:
    def opener(obj: LogObject) -> Callable[[], RawReader]:
        if obj.is_s3:

            def open_s3() -> RawReader:
                # IfMatch: an object replaced since it was listed is read on the next run.
                body: RawReader = s3_client.get_object(
                    Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag
                )["Body"]
                return body

            return open_s3

        def open_local() -> RawReader:
            return open(obj.uri, "rb")  # noqa: PTH123 - closed by ChunkStream

        return open_local

    return opener
