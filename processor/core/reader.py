"""Stream log lines from plain or gzip files (or stdin) in constant memory.

Gzip is recognised by its magic bytes, not the file name (CloudFront's ``.gz`` files, a
decompressed copy, or ``zcat``'s output on stdin all work); concatenated gzip members are read
through. Text is decoded per 1 MiB chunk, not per line; a line longer than ``max_line`` bytes is
skipped up to its end and reported as ``None`` so the caller can count it as bad.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["CHUNK", "MAX_LINE", "iter_line_blocks", "iter_lines", "open_input"]

CHUNK = 1 << 20
MAX_LINE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def open_input(path: str | Path) -> BinaryIO:
    """A binary stream of the decompressed content; ``-`` is stdin. Raises ``OSError``."""
    raw: io.BufferedReader
    if str(path) == "-":
        stdin = sys.stdin.buffer
        raw = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(stdin)  # type: ignore[arg-type]
    else:
        raw = Path(path).open("rb")  # noqa: SIM115 - returned to the caller, who closes it
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


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
