"""Decode one object: its lines → hits in batches, one outcome per line, a ``ManifestEntry``.

``decode_object`` reads an object's stream (``stream.ChunkStream``) to its end, split into blocks
of lines, decoded one block per call (``block_decoder``: a compiled decoder takes the whole
block; for ``--direct`` the compiled core writes standard-log hits straight into Arrow columns),
handing every ``BATCH`` hits on. Every line gets exactly one outcome — a hit, a hit outside
``--since/--until``, a skipped line (header, other path, not countable) or a failure counted by
reason with its line number. How reading ended decides what the entry says: to the end
(``complete``), up to a damage in the bytes (incomplete, recorded) or stopped by a read error
(``pending``: not recorded, see ``_stopped_reading``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc

from processor.backfill.encode import native_rows, recheck_rows
from processor.backfill.manifest import ManifestEntry
from processor.backfill.sources import LogObject
from processor.backfill.stream import ChunkStream, ObjectReadError
from processor.core import native
from processor.core.context import DecodeContext
from processor.core.hit import Hit
from processor.core.logparse import BlockDecoder, LogFormat, block_decoder
from processor.core.native import NativeStandardParser
from processor.core.outcome import Failure
from processor.core.reader import READ_ERROR, iter_line_blocks

__all__ = ["BATCH", "Window", "decode_object", "sniff_format"]

BATCH = 20_000  # hits per encoded hand-over to the writer thread
EXAMPLES_PER_OBJECT = 20


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
        _stopped_reading(entry, exc, 0, fail)
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
    """Reading stopped before ``line`` (0: before the first). Damaged bytes (a corrupt or
    truncated gzip) read the same every time: the object is finished as far as it goes, recorded
    incomplete with the reason. Anything else (a read that kept failing) leaves it ``pending``:
    not recorded, read again by the next run."""
    entry.complete = False
    reason = exc.reason if isinstance(exc, ObjectReadError) else READ_ERROR
    fail(reason, line)
    if not (isinstance(exc, ObjectReadError) and exc.damaged):
        entry.pending = True
        detail = exc.detail if isinstance(exc, ObjectReadError) else str(exc)
        entry.stopped = f"{reason} after line {max(line - 1, 0):,}: {detail}"


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
            # Rows the core could not judge by the newer rules (event window, signatures) are
            # re-decoded by the Python reference.
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
