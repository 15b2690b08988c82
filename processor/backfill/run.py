"""The backfill pipeline: list → read (background thread) → decode in batches → encode → writer.

``run_backfill`` is transport-agnostic: ``--direct`` and the default Kafka mode differ only in
the ``Encoder`` (Arrow rows or Kafka messages) and the ``Delivery`` the writer thread uses
(``sinks``). Each object is read by its own thread (download + gunzip, which release the GIL;
``fetch`` resumes a read that fails on the way), decoded by ``decode.decode_object``, and every
``BATCH`` hits are encoded and handed to the writer thread, whose inserts run in ClickHouse's own
threads. A damaged object never stops the run, and neither does one that cannot be read: it is
left pending (no manifest row) and reported, and the next run reads it again.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processor.backfill.children import DecoderFailed, Job, decode_in_children
from processor.backfill.decode import BATCH, Window, _Decoders, decode_object, sniff_format
from processor.backfill.encode import ArrowRows, Encoder
from processor.backfill.fetch import ReadPolicy, default_opener
from processor.backfill.manifest import covers, damaged_objects, finished_objects
from processor.backfill.sinks import Delivery, Writer
from processor.backfill.sources import LogObject, list_sources
from processor.backfill.stream import ChunkStream, RawReader
from processor.backfill.summary import BackfillSummary, Progress
from processor.core.context import DecodeContext
from processor.core.hit import Hit

__all__ = [
    "BATCH",
    "BackfillOptions",
    "BackfillSummary",
    "DecoderFailed",
    "Job",
    "Progress",
    "Window",
    "decode_object",
    "run_backfill",
    "sniff_format",
]


@dataclass(frozen=True)
class BackfillOptions:
    sources: list[str]
    since: datetime | None = None
    until: datetime | None = None
    force: bool = False
    mode: str = "direct"
    page_size: int = 1000
    read: ReadPolicy = field(default_factory=ReadPolicy)  # retries of a failing read (``fetch``)


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
    todo = _to_do(options, client, database, s3_client, summary)
    progress.start(len(todo), sum(o.size for o in todo))
    writer = Writer(delivery, client, database, on_recorded=progress.object_done)
    try:
        if todo and decode_processes > 0:
            n = min(decode_processes, len(todo))
            jobs = [
                Job(todo[i::n], ctx, options.mode, encode, window, read_ahead, options.read)
                for i in range(n)
            ]
            decode_in_children(jobs, writer, summary, progress)
        elif todo:
            streams = _streams(todo, default_opener(s3_client, options.read), read_ahead)
            _decode_here(streams, ctx, options.mode, encode, window, writer, summary, progress)
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - started
    progress.close(summary)
    return summary


def _to_do(
    options: BackfillOptions, client: Any, database: str, s3_client: Any, summary: BackfillSummary
) -> list[LogObject]:
    """The listed objects the manifest does not cover; the others are counted in ``summary``,
    the damaged among them named (``already_damaged``) so a re-run still shows them."""
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
    if options.force:
        return listed
    done = finished_objects(client, database)
    todo = [
        o for o in listed if not covers(done.get((o.uri, o.etag), []), options.since, options.until)
    ]
    summary.skipped_done = len(listed) - len(todo)
    if summary.skipped_done:
        damaged = damaged_objects(client, database)
        summary.already_damaged = [
            f"{o.uri}: {damaged[key]}" for o in listed if (key := (o.uri, o.etag)) in damaged
        ]
    return todo


def _decode_here(
    streams: Iterator[tuple[LogObject, ChunkStream]],
    ctx: DecodeContext,
    mode: str,
    encode: Encoder,
    window: Window,
    writer: Writer,
    summary: BackfillSummary,
    progress: Progress,
) -> None:
    """Decode and encode in this process, object after object, handing all to ``writer``."""
    decoders = _Decoders(ctx)

    def emit(hits: list[Hit]) -> None:
        writer.put_payload(encode(hits))

    rows = writer.put_payload if isinstance(encode, ArrowRows) else None
    with fewer_gc_passes():
        for obj, stream in streams:
            entry = decode_object(obj, stream, decoders, mode, emit, progress.lines, window, rows)
            summary.add(entry)
            writer.finished(entry)


def _default_opener(s3_client: Any) -> Callable[[LogObject], Callable[[], RawReader]]:
    """``fetch.default_opener`` with the default read policy (kept for ``scripts``)."""
    return default_opener(s3_client)
