"""Open a log object's bytes and keep reading them through transient failures.

A connection reset, a timeout or a 500 in the middle of an S3 body (or an I/O error on a local
file) is not a property of the object: reading it again works. ``ResumingReader`` therefore
re-opens the object *at the byte it had reached* (S3: ``Range`` with ``IfMatch`` on the listed
ETag; a file: ``seek``) after a back-off (``processor.backoff.retry_blocking``), so the bytes
handed on are exactly the object's, each once — the gzip decompressor and the line splitter above
never notice. Only when that keeps failing (or the error cannot pass: the object is gone, access
denied, replaced since it was listed) does ``read`` raise ``ReadStopped("read_error")``; the
backfill then leaves the object pending — no manifest row — and the next run reads it again.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.backfill.sources import LogObject
from processor.backfill.stream import RawReader
from processor.backoff import GaveUp, retry_blocking
from processor.core.reader import READ_ERROR, ReadStopped

__all__ = ["ReadPolicy", "ResumingReader", "default_opener", "transient"]

# S3 error codes that reading again cannot fix (the object's state, or ours).
_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidObjectState",
        "NoSuchBucket",
        "NoSuchKey",
        "PreconditionFailed",
        "InvalidRange",
        "403",
        "404",
        "412",
        "416",
    }
)
_PERMANENT_ERRNOS = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ESPIPE}
)


@dataclass(frozen=True)
class ReadPolicy:
    """How hard to try: ``attempts`` in a row without a byte of progress, back-off between."""

    attempts: int = 5
    base: float = 0.25
    cap: float = 10.0


class ObjectChanged(OSError):
    """The object is not the one listed any more (a local file's size or time changed)."""


class ShortRead(OSError):
    """The body ended before the size the listing gave: the connection was cut."""


def transient(exc: Exception) -> bool:
    """Whether reading again may succeed: everything but a refusal about the object itself."""
    if isinstance(exc, ObjectChanged):
        return False
    response = getattr(exc, "response", None)  # botocore ClientError
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return code not in _PERMANENT_CODES
    return not (isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS)


class ResumingReader:
    """A ``RawReader`` over ``open_at(offset)`` that resumes where a failed read stopped."""

    def __init__(
        self,
        name: str,
        open_at: Callable[[int], RawReader],
        size: int,
        policy: ReadPolicy = ReadPolicy(),
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._open_at = open_at
        self._size = size
        self._policy = policy
        self._sleep = sleep
        self._raw: RawReader | None = None
        self.offset = 0
        self.retries = 0

    def _step(self, n: int) -> bytes:
        try:
            data = self._read(n)
        except Exception:
            self._drop()
            raise
        self.offset += len(data)
        return data

    def _read(self, n: int) -> bytes:
        if self._raw is None:
            if 0 < self._size <= self.offset:
                return b""  # every byte arrived; only the end of the body failed
            self._raw = self._open_at(self.offset)
        data = self._raw.read(n)
        if not data and self.offset < self._size:
            msg = f"the body ended at byte {self.offset:,} of {self._size:,}"
            raise ShortRead(msg)
        return data

    def _drop(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):  # a broken connection may not close cleanly
                raw.close()

    def _retried(self, exc: Exception, attempt: int, delay: float) -> None:
        self.retries += 1

    def read(self, n: int = -1, /) -> bytes:
        p = self._policy
        try:
            return retry_blocking(
                lambda: self._step(n),
                attempts=p.attempts,
                transient=transient,
                on_error=self._retried,
                base=p.base,
                cap=p.cap,
                sleep=self._sleep,
            )
        except GaveUp as exc:
            last = exc.last
            what = f"{type(last).__name__}: {last}" if str(last) else type(last).__name__
            tries = f"{exc.attempts} attempts" if transient(last) else "not retried"
            detail = f"stopped at byte {self.offset:,} ({tries}): {what}"
            raise ReadStopped(READ_ERROR, detail) from None

    def close(self) -> None:
        self._drop()


def _open_s3(s3_client: Any, obj: LogObject) -> Callable[[int], RawReader]:
    def open_at(offset: int) -> RawReader:
        # IfMatch: an object replaced since it was listed is read on the next run, and a resumed
        # read never splices two versions together.
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        body: RawReader = s3_client.get_object(
            Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag, **extra
        )["Body"]
        return body

    return open_at


def _open_local(obj: LogObject) -> Callable[[int], RawReader]:
    def open_at(offset: int) -> RawReader:
        path = Path(obj.uri)
        fh = path.open("rb")
        if offset:
            st = path.stat()
            if f"{st.st_size}-{st.st_mtime_ns}" != obj.etag:
                fh.close()
                msg = f"{obj.uri} changed while it was read"
                raise ObjectChanged(msg)
            fh.seek(offset)
        return fh

    return open_at


def default_opener(
    s3_client: Any, policy: ReadPolicy = ReadPolicy()
) -> Callable[[LogObject], Callable[[], RawReader]]:
    """For each object, the ``ChunkStream`` opener of its resuming reader."""

    def opener(obj: LogObject) -> Callable[[], RawReader]:
        open_at = _open_s3(s3_client, obj) if obj.is_s3 else _open_local(obj)
        return lambda: ResumingReader(obj.uri, open_at, obj.size, policy)

    return opener
