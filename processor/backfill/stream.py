"""Read one object in a background thread: download and gunzip while the caller parses.

The thread pushes decompressed chunks into a bounded queue, so memory stays at a few chunks
whatever the object's size, and the network wait and ``zlib`` (which releases the GIL) run beside
the parser on the other core. A corrupt or truncated gzip is not an exception for the thread: the
error travels through the queue and is raised by ``read()`` after the data before it, so the
caller decodes everything up to the damage and can name the line where it stopped.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ChunkStream", "ObjectReadError", "RawReader"]

CHUNK = 1 << 20
DEPTH = 8
_GZIP_MAGIC = b"\x1f\x8b"
CORRUPT_GZIP = "corrupt_gzip"
TRUNCATED = "truncated"
READ_ERROR = "read_error"


class RawReader(Protocol):
    """Anything with ``read(n)`` and ``close()``: an open file, a botocore ``StreamingBody``."""

    def read(self, n: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class ObjectReadError(OSError):
    """The object could not be read to its end; ``reason`` is ``corrupt_gzip``, ``truncated``
    or ``read_error``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_END = object()


class ChunkStream:
    """A read-only stream of the decompressed bytes of ``opener()``, filled by a thread.

    ``read(n)`` returns the next chunk (any length) and ``b""`` at the end — what
    ``processor.core.reader.iter_lines`` needs. ``close()`` stops the thread early.
    """

    def __init__(self, opener: Callable[[], RawReader], *, chunk: int = CHUNK) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._chunk = chunk
        self._done = False
        self.raw_bytes = 0
        self._thread = threading.Thread(
            target=self._fill, args=(opener,), name="backfill-read", daemon=True
        )
        self._thread.start()

    # -- producer (thread) -------------------------------------------------------------------

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            return True
        return False

    def _fill(self, opener: Callable[[], RawReader]) -> None:
        try:
            raw = opener()
        except Exception as exc:
            self._put(ObjectReadError(READ_ERROR, str(exc) or type(exc).__name__))
            self._put(_END)
            return
        try:
            self._pump(raw)
        except ObjectReadError as exc:
            self._put(exc)
        except Exception as exc:
            self._put(ObjectReadError(READ_ERROR, str(exc) or type(exc).__name__))
        finally:
            try:
                raw.close()
            finally:
                self._put(_END)

    def _pump(self, raw: RawReader) -> None:
        first = raw.read(self._chunk)
        self.raw_bytes += len(first)
        if first[:2] != _GZIP_MAGIC:
            data = first
            while data:
                if not self._put(data):
                    return
                data = raw.read(self._chunk)
                self.raw_bytes += len(data)
            return
        # wbits 31 = gzip framing; a new decompressor for each concatenated member.
        inflate = zlib.decompressobj(31)
        data = first
        while data:
            try:
                out = inflate.decompress(data)
            except zlib.error as exc:
                raise ObjectReadError(CORRUPT_GZIP, str(exc)) from None
            if out and not self._put(out):
                return
            while inflate.eof and inflate.unused_data:
                rest = inflate.unused_data
                if not rest.strip(b"\x00"):
                    break  # zero padding after the last member
                inflate = zlib.decompressobj(31)
                try:
                    out = inflate.decompress(rest)
                except zlib.error as exc:
                    raise ObjectReadError(CORRUPT_GZIP, str(exc)) from None
                if out and not self._put(out):
                    return
            data = raw.read(self._chunk)
            self.raw_bytes += len(data)
        tail = inflate.flush()
        if tail and not self._put(tail):
            return
        if not inflate.eof:
            raise ObjectReadError(TRUNCATED, "the gzip stream ends before its last member does")

    # -- consumer ----------------------------------------------------------------------------

    def read(self, n: int = -1, /) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if item is _END:
            self._done = True
            return b""
        if isinstance(item, ObjectReadError):
            self._done = True
            raise item
        data: bytes = item
        return data

    def close(self) -> None:
        self._stop.set()
        self._done = True
        # Drain so a producer blocked on a full queue notices the stop flag promptly.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
