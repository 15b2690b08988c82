"""The backfill pipeline: list → read (background thread) → decode in batches → encode → writer.

``run_backfill`` is transport-agnostic: ``--direct`` and the default Kafka mode differ only in
the ``Encoder`` (Arrow rows or Kafka messages) and the ``Delivery`` the writer thread uses
(``sinks``). Each object is read by its own thread (download + gunzip, which release the GIL),
split into blocks of lines, decoded one block per call (``block_decoder``: a compiled decoder
takes the whole block; for ``--direct`` the compiled core writes standard-log hits straight into
Arrow columns), and every ``BATCH`` hits are encoded and handed to the writer thread,
whose inserts run in ClickHouse's own threads. Every line of every object gets exactly one
outcome — a hit, a hit outside ``--since/--until``, a skipped line (header, other path, not
countable) or a failure counted by reason with its line number — and a damaged object never
stops the run.
"""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc

from processor.backfill.encode import ArrowRows, Encoder, native_rows, recheck_rows
from processor.backfill.manifest import ManifestEntry, covers, finished_objects
from processor.backfill.sinks import Delivery, Writer
from processor.backfill.sources import LogObject, list_sources
from processor.backfill.stream import ChunkStream, ObjectReadError, RawReader
from processor.core import native
from processor.core.context import DecodeContext
from processor.core.hit import Hit
from processor.core.logparse import BlockDecoder, LogFormat, block_decoder
from processor.core.native import NativeStandardParser
from processor.core.outcome import Failure
from processor.core.reader import iter_line_blocks
from processor.errors import OpensError

__all__ = ["BackfillOptions", "BackfillSummary", "DecoderFailed", "run_backfill", "sniff_format"]

BATCH = 20_000  # hits per encoded hand-over to the writer thread
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
    outside_window: int = 0
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
        self.outside_window += entry.outside_window
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
            "hits_outside_window": self.outside_window,
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
    """``read()`` that returns an already-read first chunk, then the rest of the stream."""

    def __init__(self, first: bytes, rest: ChunkStream) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def read(self, n: int = -1, /) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                return first
        return self._rest.read(n)


class _Decoders:
    """One stateful decoder per format, reused across objects (``new_file`` resets headers)."""

    def __init__(self, ctx: DecodeContext) -> None:
        self._ctx = ctx
        self._made: dict[str, tuple[BlockDecoder, Callable[[], None]]] = {}
        self._columns: NativeStandardParser | None = None

    def columns(self, fmt: LogFormat) -> NativeStandardParser | None:
        """The compiled standard-log parser that emits Arrow columns, when it applies."""
        if fmt != "standard" or not native.AVAILABLE:
            return None
        if self._columns is None:
            self._columns = NativeStandardParser(self._ctx)
        return self._columns

    def get(self, fmt: LogFormat) -> tuple[BlockDecoder, Callable[[], None]]:
        found = self._made.get(fmt)
        if found is None:
            found = self._made[fmt] = block_decoder(fmt, self._ctx)
        return found


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


@dataclass(frozen=True)
class Window:
    """``--since/--until``: the event times whose hits a run delivers (``None``: unbounded)."""

    since: datetime | None = None
    until: datetime | None = None

    def split(self, hits: list[Hit]) -> tuple[list[Hit], int]:
        """The hits inside the window, and how many were outside."""
        lo, hi = _ms(self.since), _ms(self.until)
        if lo is None and hi is None:
            return hits, 0
        lo = -(1 << 62) if lo is None else lo
        hi = 1 << 62 if hi is None else hi
        inside = [h for h in hits if lo <= h.ts_ms < hi]
        return inside, len(hits) - len(inside)

    def split_rows(self, rows: pa.RecordBatch) -> tuple[pa.RecordBatch, int]:
        """``split`` for Arrow rows (``HITS_SCHEMA``)."""
        lo, hi = _ms(self.since), _ms(self.until)
        if lo is None and hi is None:
            return rows, 0
        ts = rows.column("ts").cast(pa.int64())
        keep = pc.and_(
            pc.greater_equal(ts, -(1 << 62) if lo is None else lo),
            pc.less(ts, 1 << 62 if hi is None else hi),
        )
        inside = rows.filter(keep)
        return inside, rows.num_rows - inside.num_rows


def _decode_block(decode: BlockDecoder, block: list[str | None]) -> list[Hit | Failure | None]:
    """One outcome per line; an over-long line (``None`` from the reader) is a failure."""
    if None not in block:
        return decode(cast(list[str], block))
    lines = [line for line in block if line is not None]
    outs = iter(decode(lines))
    too_long = Failure("line_too_long", b"")
    return [too_long if line is None else next(outs) for line in block]


def decode_object(
    obj: LogObject,
    stream: ChunkStream,
    decoders: _Decoders,
    mode: str,
    emit: Callable[[list[Hit]], None],
    on_lines: Callable[[int], None] | None = None,
    window: Window = Window(),
    emit_rows: Callable[[pa.RecordBatch], None] | None = None,
) -> ManifestEntry:
    """Decode one object to the end (or to the damage), handing hits to ``emit`` in batches.

    With ``emit_rows`` (``--direct``: hits become Arrow rows anyway) a standard log is decoded
    by the compiled core straight into Arrow columns, handed to ``emit_rows``; only the lines
    the core defers become ``Hit`` values for ``emit``. Counts and failures are the same.
    """
    entry = ManifestEntry(
        obj.uri, obj.etag, obj.size, obj.kind or "", mode, since=window.since, until=window.until
    )

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
    blocks = iter_line_blocks(cast(BinaryIO, _Replay(first, stream)))
    columns = decoders.columns(fmt) if emit_rows is not None else None
    if columns is not None and emit_rows is not None:
        _decode_columns(entry, blocks, columns, emit, emit_rows, on_lines, window, fail)
        return entry
    decode, new_file = decoders.get(fmt)
    new_file()
    batch: list[Hit] = []
    lines = 0
    try:
        for block in blocks:
            outs = _decode_block(decode, block)
            hits = [o for o in outs if o.__class__ is Hit]
            if len(hits) + outs.count(None) < len(outs):
                for i, out in enumerate(outs):
                    if isinstance(out, Failure):
                        fail(out.reason, lines + i + 1)
            lines += len(outs)
            # The pixel path but not countable (POST, 404, no sid/cid) is skipped, as in real time.
            hits, outside = window.split([h for h in hits if h.is_hit])
            entry.outside_window += outside
            batch.extend(hits)
            if len(batch) >= BATCH:
                entry.hits += len(batch)
                emit(batch)
                batch = []
            if on_lines is not None:
                on_lines(len(outs))
    except (ObjectReadError, OSError, EOFError) as exc:
        _stopped_reading(entry, exc, lines + 1, fail)
    if batch:
        entry.hits += len(batch)
        emit(batch)
    entry.lines = lines
    return entry


def _stopped_reading(
    entry: ManifestEntry, exc: Exception, line: int, fail: Callable[[str, int], None]
) -> None:
    """The object could not be read past ``line``: it stays incomplete, the reason counted."""
    entry.complete = False
    fail(exc.reason if isinstance(exc, ObjectReadError) else "read_error", line)


def _decode_columns(
    entry: ManifestEntry,
    blocks: Iterator[list[str | None]],
    parser: NativeStandardParser,
    emit: Callable[[list[Hit]], None],
    emit_rows: Callable[[pa.RecordBatch], None],
    on_lines: Callable[[int], None] | None,
    window: Window,
    fail: Callable[[str, int], None],
) -> None:
    """``decode_object``'s loop on the compiled core's Arrow columns (see there)."""
    parser.reset()
    rows: list[pa.RecordBatch] = []
    pending = 0
    hits: list[Hit] = []
    lines = 0

    def flush() -> None:
        nonlocal rows, pending, hits
        entry.hits += pending
        for batch in rows:  # one per block: never near Arrow's 2 GiB string-offset limit
            emit_rows(batch)
        if hits:
            entry.hits += len(hits)
            emit(hits)
        rows, pending, hits = [], 0, []

    try:
        for block in blocks:
            # Over-long lines (None) are skipped by the reader; ``kept`` maps back to the block.
            kept = (
                [i for i, line in enumerate(block) if line is not None] if None in block else None
            )
            text = cast(list[str], block if kept is None else [block[i] for i in kept])
            found, failures = parser.parse_columns(text)
            batch, redone = recheck_rows(parser, native_rows(parser.take_columns()), text)
            failures += [(i, out) for i, out in redone if isinstance(out, Failure)]
            found += [out for _, out in redone if isinstance(out, Hit)]
            bad = [(i if kept is None else kept[i], f.reason) for i, f in failures]
            if kept is not None:
                bad += [(i, "line_too_long") for i, line in enumerate(block) if line is None]
            for i, reason in sorted(bad):
                fail(reason, lines + i + 1)
            lines += len(block)
            inside, outside = window.split_rows(batch)
            entry.outside_window += outside
            if inside.num_rows:
                rows.append(inside)
                pending += inside.num_rows
            found, outside = window.split([h for h in found if h.is_hit])
            entry.outside_window += outside
            hits.extend(found)
            if pending + len(hits) >= BATCH:
                flush()
            if on_lines is not None:
                on_lines(len(block))
    except (ObjectReadError, OSError, EOFError) as exc:
        _stopped_reading(entry, exc, lines + 1, fail)
    parser.take_columns()  # nothing from a block cut short by a read error
    flush()
    entry.lines = lines


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


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Collect the young generation every 50,000 allocations instead of 700, for the duration.

    Decoding allocates ~20,000 ``Hit`` values per batch that live until they are encoded; with
    the default threshold the collector rescans them over and over (measured: 20-35 % of the
    decoding time, ``scripts/profile_backfill``). Hits hold no reference cycles, so collecting
    less often frees the same memory, later.
    """
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


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
    encode: Encoder | None = None,
    s3_client: Any = None,
    progress: Progress | None = None,
    read_ahead: int = 2,
    decode_processes: int = 0,
) -> BackfillSummary:
    """Backfill every unfinished object of ``options.sources``; returns the run's totals.

    ``client`` reads and writes the manifest in ``database`` (the schema must be applied).
    ``encode`` turns hit batches into what ``delivery`` sends (default: Arrow rows for
    ClickHouse). ``decode_processes`` > 0 reads, decodes and encodes the objects in that many
    child processes (``decoder``), objects shared out round-robin, while this process only writes.
    Off by default (and in ``opens backfill``): with the compiled core writing Arrow columns the
    decoding half is a fifth of a backfill's CPU and the insert two thirds, so children only add
    their start-up and pickling and compete with ClickHouse's insert threads (1,000,000 lines:
    120,481 lines/s in two children, 124,212 in-process); ``scripts/bench_backfill`` measures both.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    encode = encode or ArrowRows()
    window = Window(options.since, options.until)
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
    done = {} if options.force else finished_objects(client, database)
    todo = [
        o for o in listed if not covers(done.get((o.uri, o.etag), []), options.since, options.until)
    ]
    summary.skipped_done = len(listed) - len(todo)
    progress.start(len(todo), sum(o.size for o in todo))
    writer = Writer(delivery, client, database, on_recorded=progress.object_done)
    try:
        if not todo:
            pass
        elif decode_processes > 0:
            jobs = [
                Job(todo[i::decode_processes], ctx, options.mode, encode, window, read_ahead)
                for i in range(min(decode_processes, len(todo)))
            ]
            _decode_in_children(jobs, writer, summary, progress)
        else:
            decoders = _Decoders(ctx)

            def emit(hits: list[Hit]) -> None:
                writer.put_payload(encode(hits))

            rows = writer.put_payload if isinstance(encode, ArrowRows) else None

            with fewer_gc_passes():
                for obj, stream in _streams(todo, _default_opener(s3_client), read_ahead):
                    entry = decode_object(
                        obj, stream, decoders, options.mode, emit, progress.lines, window, rows
                    )
                    summary.add(entry)
                    writer.finished(entry)
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - started
    progress.close(summary)
    return summary


class DecoderFailed(OpensError):
    """A decoding process stopped before finishing; finished objects are in the manifest."""


@dataclass(frozen=True)
class Job:
    """What one decoding child does: read, decode and encode ``objects`` in order."""

    objects: list[LogObject]
    ctx: DecodeContext
    mode: str
    encode: Encoder
    window: Window
    read_ahead: int = 2


def _decode_in_children(
    jobs: list[Job], writer: Writer, summary: BackfillSummary, progress: Progress
) -> None:
    """Run each job in a child process; a thread per child forwards its frames to the writer.

    A child's payloads reach the writer's queue before the ``done`` frame of their object (one
    pipe, one forwarding thread), so the manifest row still follows the delivery of its hits.
    """
    lock = threading.Lock()
    errors: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    threads = []

    def forward(proc: subprocess.Popen[bytes]) -> None:
        from processor.backfill.decoder import read_frames

        assert proc.stdout is not None  # noqa: S101 - PIPE given
        finished = False
        try:
            for kind, value in read_frames(proc.stdout):
                if kind == "payload":
                    writer.put_payload(value)
                elif kind == "lines":
                    with lock:
                        progress.lines(value)
                elif kind == "done":
                    with lock:
                        summary.add(value)
                    writer.finished(value)
                elif kind == "end":
                    finished = True
                    break
                else:
                    errors.append(f"decoding failed: {value}")
                    break
        except BaseException as exc:  # the writer failed: stop this child, report it below
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            code = proc.wait()
            if not finished and not errors:
                errors.append(f"a decoding process ended early (exit status {code})")

    try:
        for job in jobs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "processor.backfill.decoder"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdin is not None  # noqa: S101 - PIPE given
            pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()
            thread = threading.Thread(target=forward, args=(proc,), name="backfill-decoder")
            thread.start()
            threads.append(thread)
    finally:
        for thread in threads:
            thread.join()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise DecoderFailed(errors[0], hint="re-run: finished objects are skipped")


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
