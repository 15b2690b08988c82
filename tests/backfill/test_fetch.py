"""``fetch.ResumingReader``: the bytes handed on are the object's, each once, however reads fail."""

from __future__ import annotations

import errno
import gzip
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.backfill.fetch import ReadPolicy, ResumingReader, transient
from processor.backfill.stream import ChunkStream
from processor.core.reader import READ_ERROR, ReadStopped

pytestmark = pytest.mark.unit

NO_WAIT = ReadPolicy(attempts=3, base=0.0, cap=0.0)


class _Flaky:
    """Serves ``data[offset:]``; raises ``error`` once the absolute position reaches a cut."""

    def __init__(self, data: bytes, offset: int, cut: int | None, error: Exception) -> None:
        self._buf = io.BytesIO(data)
        self._buf.seek(offset)
        self._cut = cut
        self._error = error

    def read(self, n: int = -1, /) -> bytes:
        pos = self._buf.tell()
        if self._cut is not None and pos >= self._cut:
            raise self._error
        limit = n if n > 0 else 1 << 30
        if self._cut is not None:
            limit = min(limit, self._cut - pos)
        return self._buf.read(limit)

    def close(self) -> None:
        self._buf.close()


def _reader(data: bytes, cuts: list[int], *, size: int | None = None) -> ResumingReader:
    """Each open fails at the next cut (absolute byte positions, in order), then none."""
    left = sorted(cuts)
    opened: list[int] = []

    def open_at(offset: int) -> _Flaky:
        opened.append(offset)
        cut = left.pop(0) if left else None
        return _Flaky(data, offset, cut, ConnectionResetError(errno.ECONNRESET, "reset"))

    reader = ResumingReader("mem", open_at, len(data) if size is None else size, NO_WAIT)
    reader.opened = opened  # type: ignore[attr-defined]
    return reader


def _drain(reader: ResumingReader, n: int) -> bytes:
    out = []
    while chunk := reader.read(n):
        out.append(chunk)
    return b"".join(out)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=4000),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    n=st.integers(1, 700),
)
def test_resumed_reads_hand_on_exactly_the_bytes(data: bytes, cuts: list[int], n: int) -> None:
    cuts = sorted({c % len(data) for c in cuts})
    reader = _reader(data, cuts)
    assert _drain(reader, n) == data
    assert reader.opened[0] == 0  # type: ignore[attr-defined]
    assert reader.opened[1:] == cuts  # type: ignore[attr-defined]  # each resume where it stopped


def test_a_gzip_cut_by_resets_decompresses_whole() -> None:
    text = b"".join(b"line %d\n" % i for i in range(50_000))
    packed = gzip.compress(text)
    cuts = [len(packed) // 5, len(packed) // 2, len(packed) - 3]
    stream = ChunkStream(lambda: _reader(packed, cuts), chunk=4096)
    out = []
    while chunk := stream.read():
        out.append(chunk)
    assert b"".join(out) == text


def test_no_progress_gives_up_after_the_attempts_with_a_reason() -> None:
    data = b"x" * 1000
    reader = _reader(data, [500, 500, 500, 500])
    with pytest.raises(ReadStopped) as err:
        _drain(reader, 100)
    assert err.value.reason == READ_ERROR and not err.value.damaged
    assert "stopped at byte 500 (3 attempts)" in err.value.detail
    assert "ConnectionResetError" in err.value.detail


def test_a_body_shorter_than_listed_is_a_failed_read() -> None:
    data = b"y" * 100
    reader = ResumingReader("mem", lambda off: io.BytesIO(data[off:]), 150, NO_WAIT)
    with pytest.raises(ReadStopped) as err:
        _drain(reader, 64)
    assert "the body ended at byte 100 of 150" in err.value.detail


def test_refusals_about_the_object_are_not_retried() -> None:
    gone = OSError(errno.ENOENT, "No such file")
    assert not transient(gone)
    assert transient(OSError(errno.EIO, "Input/output error"))
    assert transient(TimeoutError("read timed out"))
    for code, retry in (("NoSuchKey", False), ("PreconditionFailed", False), ("500", True)):
        exc = Exception("x")
        exc.response = {"Error": {"Code": code}}  # type: ignore[attr-defined]
        assert transient(exc) is retry
    calls = []

    def open_at(offset: int) -> io.BytesIO:
        calls.append(offset)
        raise gone

    with pytest.raises(ReadStopped) as err:
        ResumingReader("mem", open_at, 10, NO_WAIT).read(5)
    assert calls == [0] and "not retried" in err.value.detail
