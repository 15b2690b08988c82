"""Read one object in a background thread: download and gunzip while the caller parses.

The thread pushes decompressed chunks into a bounded queue, so memory stays at a few chunks
whatever the object's size, and the network wait and ``zlib`` (which releases the GIL) run beside
the parser on the other core. A corrupt or truncated gzip (``processor.core.reader.inflate``, the
reader ``opens parse`` uses too) is not an exception for the thread: the error travels through the
queue and is raised by ``read()`` after the data before it, so the
caller decodes everything up to the damage and can name the line where it stopped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from processor.core.reader import CORRUPT_GZIP, READ_ERROR, TRUNCATED, ReadStopped, inflate

__all__ = ["CORRUPT_GZIP", "READ_ERROR", "TRUNCATED", "ChunkStream", "ObjectReadError", "RawReader"]

CHUNK = 1 << 20
DEPTH = 8


class RawReader(Protocol):
    """Anything with ``read(n)`` and ``close()``: an open file, a botocore ``StreamingBody``."""

    def read(self, n: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


# The object could not be read to its end: ``reason`` is ``corrupt_gzip``, ``truncated`` (the
# bytes are damaged: ``damaged``) or ``read_error`` (reading stopped on the way).
ObjectReadError = ReadStopped


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
        def read(n: int) -> bytes:
            data = raw.read(n)
            self.raw_bytes += len(data)
            return data

        for out in inflate(read, self._chunk):
            if not self._put(out):
                return

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
