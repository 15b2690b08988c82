"""Decoders never raise: random bytes, truncations, wrong field counts, huge lines."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.logparse import ParseSummary, decode_lines, line_decoder
from processor.core.outcome import Failure
from processor.core.reader import iter_lines
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser
from tests.core.conftest import SECRET
from tests.core.render import Req, realtime_record, s3_line, standard_header, standard_line

pytestmark = pytest.mark.unit

CTX = DecodeContext(secrets=(SECRET,), pixel_only=False)
CLASSIFIER = Classifier()
REQ = Req(request_id="fuzz-1", ts_ms=1_700_000_000_123, sid="s", cid="c", cat="k", secret=SECRET)
GOOD = {
    "realtime": realtime_record(REQ, DEFAULT_REALTIME_FIELDS),
    "standard": standard_line(REQ).encode(),
    "s3": s3_line(REQ).encode(),
}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_all(data: bytes) -> list[object]:
    text = data.decode("utf-8", "replace")
    std = StandardParser(CTX, classifier=CLASSIFIER)
    return [
        RealtimeDecoder(DEFAULT_REALTIME_FIELDS, CTX, classifier=CLASSIFIER).decode(data),
        std.parse_line(text),
        std.parse_line(text),
        S3AccessParser(CTX, classifier=CLASSIFIER).parse_line(text),
    ]


def _ok(outs: list[object]) -> None:
    for out in outs:
        assert out is None or isinstance(out, (Hit, Failure))
        if isinstance(out, Failure):
            assert out.reason != "unexpected", out.detail


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    _ok(decode_all(data))


@SETTINGS
@given(fmt=st.sampled_from(sorted(GOOD)), cut=st.integers(min_value=0, max_value=2000))
def test_truncations(fmt: str, cut: int) -> None:
    _ok(decode_all(GOOD[fmt][:cut]))


@SETTINGS
@given(
    fmt=st.sampled_from(sorted(GOOD)),
    ops=st.lists(
        st.tuples(st.sampled_from(["drop", "dup", "swap", "junk"]), st.integers(0, 60)),
        max_size=6,
    ),
    junk=st.text(max_size=12),
)
def test_wrong_field_counts_and_mangled_fields(
    fmt: str, ops: list[tuple[str, int]], junk: str
) -> None:
    sep = " " if fmt == "s3" else "\t"
    parts = GOOD[fmt].decode().rstrip("\n").split(sep)
    for op, i in ops:
        i %= max(len(parts), 1)
        if op == "drop" and parts:
            del parts[i]
        elif op == "dup" and parts:
            parts.insert(i, parts[i])
        elif op == "swap" and len(parts) > 1:
            parts[i], parts[-1] = parts[-1], parts[i]
        else:
            parts.insert(i, junk)
    _ok(decode_all(sep.join(parts).encode()))


@SETTINGS
@given(st.text(max_size=300))
def test_header_lines_of_any_shape(text: str) -> None:
    p = StandardParser(CTX, classifier=CLASSIFIER)
    assert p.parse_line("#Fields: " + text) is None
    _ok([p.parse_line(standard_line(REQ)), p.parse_line(text)])


def test_huge_lines() -> None:
    huge = b"x" * 3_000_000
    _ok(decode_all(huge))
    _ok(decode_all(GOOD["standard"] + b"\t" * 200_000))
    stream = io.BytesIO(b"short\n" + huge + b"\nafter\n" + huge)
    assert list(iter_lines(stream, chunk_size=4096, max_line=100_000)) == [
        "short",
        None,
        "after",
        None,
    ]


def test_summary_counts_every_bad_line_by_reason() -> None:
    text = (
        standard_header()
        + standard_line(REQ)
        + "\nnot a log line\n"
        + standard_line(REQ).replace("\t200\t", "\tOK\t")
        + "\n"
        + "x" * 2_000_000
        + "\n"
        + standard_line(REQ)
        + "\n"
    )
    decode, _ = line_decoder("standard", DecodeContext(secrets=(SECRET,)), classifier=CLASSIFIER)
    summary = ParseSummary()
    stream = io.BytesIO(gzip.compress(text.encode()))
    hits = list(decode_lines(decode, iter_lines(gzip.GzipFile(fileobj=stream)), summary, "f.gz"))
    assert len(hits) == 2
    assert summary.lines == 7
    assert summary.failures == {"field_count": 1, "bad_status": 1, "line_too_long": 1}
    assert summary.examples == {
        "field_count": ["f.gz:4"],
        "bad_status": ["f.gz:5"],
        "line_too_long": ["f.gz:6"],
    }
    assert "bad_status: 1 (first at f.gz:5)" in summary.render()
