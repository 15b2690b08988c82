"""Stream log lines from plain or gzip files (or stdin) in constant memory.

Gzip is recognised by its magic bytes, not the file name (CloudFront's ``.gz`` files, a
decompressed copy, or ``zcat``'s output on stdin all work); concatenated gzip members are read
through. Text is decoded per 1 MiB chunk, not per line; a line longer than ``max_line`` bytes is
skipped up to its end and reported as ``None`` so the caller can count it as bad.

``inflate`` is the one gzip reader of the project (``opens parse`` here, the backfill's reading
thread in ``processor.backfill.stream``): a damaged gzip yields every byte that decompresses
before the damage, then raises ``ReadStopped``, so both recover exactly the same lines. The
standard library's ``GzipFile`` would drop the whole block it was decompressing.
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

__all__ = [
    "CHUNK",
    "CORRUPT_GZIP",
    "MAX_LINE",
    "READ_ERROR",
    "TRUNCATED",
    "ReadStopped",
    "inflate",
    "iter_line_blocks",
    "iter_lines",
    "open_input",
]

CHUNK = 1 << 20
MAX_LINE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
CORRUPT_GZIP = "corrupt_gzip"
TRUNCATED = "truncated"
READ_ERROR = "read_error"
DAMAGE = frozenset({CORRUPT_GZIP, TRUNCATED})


class ReadStopped(OSError):
    """The input could not be read to its end; ``reason`` is ``corrupt_gzip``, ``truncated``
    or ``read_error``. Raised after every byte before the stop has been handed out."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def damaged(self) -> bool:
        """The bytes themselves are bad (reading them again gives the same), as opposed to a
        read that failed on the way (``read_error``: reading again may succeed)."""
        return self.reason in DAMAGE


def inflate(read: Callable[[int], bytes], chunk: int = CHUNK) -> Iterator[bytes]:
    """The content of a plain or gzip stream read with ``read(n)``, chunk by chunk.

    A corrupt or truncated gzip yields everything that decompresses before the damage, then
    raises ``ReadStopped``; an exception of ``read`` itself propagates unchanged.
    """
    first = read(chunk)
    while 0 < len(first) < 2:  # a network stream may hand out a single byte
        more = read(chunk)
        if not more:
            break
        first += more
    if first[:2] != _GZIP_MAGIC:
        data = first
        while data:
            yield data
            data = read(chunk)
        return
    # wbits 31 = gzip framing; a new decompressor for each concatenated member.
    inflater = zlib.decompressobj(31)
    data = first
    while data:
        while True:
            try:
                out = inflater.decompress(data)
            except zlib.error as exc:
                raise ReadStopped(CORRUPT_GZIP, str(exc)) from None
            if out:
                yield out
            data = inflater.unused_data if inflater.eof else b""
            if not data.strip(b"\x00"):
                break  # the member ended with this input, or zero padding after the last
            inflater = zlib.decompressobj(31)
        data = read(chunk)
    tail = inflater.flush()
    if tail:
        yield tail
    if not inflater.eof:
        raise ReadStopped(TRUNCATED, "the gzip stream ends before its last member does")


class _Inflated(io.RawIOBase):
    """``read(n)`` over ``inflate``: what ``open_input`` returns for a gzip input."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._chunks = inflate(raw.read)
        self._buffer = b""
        self._at = 0  # an index, not re-slicing: one inflated chunk can be many megabytes

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1, /) -> bytes:
        while self._at >= len(self._buffer):
            self._buffer, self._at = next(self._chunks, b""), 0
            if not self._buffer:
                return b""
        end = len(self._buffer) if n < 0 else min(len(self._buffer), self._at + n)
        out = (
            self._buffer
            if (self._at, end) == (0, len(self._buffer))
            else self._buffer[self._at : end]
        )
        self._at = end
        return out

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_input(path: str | Path) -> BinaryIO:
    """A binary stream of the decompressed content; ``-`` is stdin. Raises ``OSError``; reading
    a damaged gzip raises ``ReadStopped`` after the part before the damage."""
    raw: io.BufferedReader
    if str(path) == "-":
        stdin = sys.stdin.buffer
        raw = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(stdin)  # type: ignore[arg-type]
    else:
        raw = Path(path).open("rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return cast(BinaryIO, _Inflated(cast(BinaryIO, raw)))
    return cast(BinaryIO, raw)


def iter_lines(
    stream: BinaryIO, *, chunk_size: int = CHUNK, max_line: int = MAX_LINE
) -> Iterator[str | None]:
    """Every line of ``stream`` as text without its ``\\n`` (``None`` for an over-long line).

    Invalid UTF-8 becomes U+FFFD; a final line without a newline is still yielded.
    """
    for block in iter_line_blocks(stream, chunk_size=chunk_size, max_line=max_line):
        yield from block


def iter_line_blocks(
    stream: BinaryIO, *, chunk_size: int = CHUNK, max_line: int = MAX_LINE
) -> Iterator[list[str | None]]:
    """The lines of ``iter_lines`` in one list per chunk read (for batch decoders)."""
    pending = b""
    skipping = False
    read = stream.read
    while True:
        chunk = read(chunk_size)
        if not chunk:
            break
        block: list[str | None] = []
        if skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            skipping = False
            block.append(None)
            chunk = chunk[cut + 1 :]
        if pending:
            chunk = pending + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending = chunk
            if len(pending) > max_line:
                pending = b""
                skipping = True
            if block:
                yield block
            continue
        pending = chunk[cut + 1 :]
        lines = chunk[:cut].decode("utf-8", "replace").split("\n")
        # Only a block longer than the limit can hold an over-long line; ``max`` (C speed)
        # tells whether this one does before any line is looked at in Python.
        if cut > max_line and max(map(len, lines)) > max_line:
            block.extend(None if len(line) > max_line else line for line in lines)
        else:
            block.extend(lines)
        yield block
        if len(pending) > max_line:
            pending = b""
            skipping = True
    if skipping:
        yield [None]
    elif pending:
        yield [pending.decode("utf-8", "replace")]
