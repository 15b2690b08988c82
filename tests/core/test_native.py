"""The native decoding core (``opens_native``) gives exactly the Python reference's outcomes.

Equal ``Hit``s on generated requests in every context, equal ``Failure``s (reason, raw bytes,
detail) on hostile input, equal results on every real sample, and byte-identical NDJSON.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.backfill.encode import HITS_SCHEMA, ArrowRows, native_rows, recheck_rows
from processor.core import native
from processor.core.classify import Classifier
from processor.core.context import DecodeContext, IpPrivacy
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.logparse import ParseSummary, block_decoder, decode_blocks, decode_lines
from processor.core.logparse import line_decoder as _line_decoder
from processor.core.outcome import Failure
from processor.core.reader import CHUNK, MAX_LINE, iter_line_blocks, iter_lines
from processor.core.realtime import RealtimeDecoder
from processor.core.standard import StandardParser
from tests.core.conftest import OLD_SECRET, SECRET
from tests.core.render import Req, realtime_record, standard_header, standard_line
from tests.core.test_realtime import _aggregate

pytestmark = pytest.mark.unit

CLASSIFIER = Classifier()
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IP_MODES: list[IpPrivacy] = ["truncate", "full", "drop"]
WIDE_FIELDS = (*DEFAULT_REALTIME_FIELDS, "cs-headers", "cs-protocol")


def test_native_module_is_importable() -> None:
    """CI must not fall back to the slow path silently."""
    import opens_native  # noqa: F401

    assert native.AVAILABLE
    assert isinstance(native.standard_parser(), native.NativeStandardParser)
    assert isinstance(native.realtime_decoder(), native.NativeRealtimeDecoder)
    kind, _ = _line_decoder("standard", DecodeContext())
    assert isinstance(getattr(kind, "__self__", None), native.NativeStandardParser)


def _pair(ctx: DecodeContext) -> tuple[StandardParser, StandardParser]:
    return StandardParser(ctx, classifier=CLASSIFIER), native.standard_parser(
        ctx, classifier=CLASSIFIER
    )


def _rt_pair(
    ctx: DecodeContext, fields: tuple[str, ...] = DEFAULT_REALTIME_FIELDS
) -> tuple[RealtimeDecoder, RealtimeDecoder]:
    return RealtimeDecoder(fields, ctx, classifier=CLASSIFIER), native.realtime_decoder(
        fields, ctx, classifier=CLASSIFIER
    )


# -- generated requests --------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12)
_ids = st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), _text)
_ips = st.one_of(
    st.sampled_from(["192.0.2.10", "172.224.226.5", "10.0.0.1", "2001:db8::1", "-", "01.2.3.4"]),
    st.ip_addresses().map(str),
)
_agents = st.one_of(
    st.sampled_from(
        [
            "Mozilla/5.0",
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
            "GoogleImageProxy)",
            "curl/8.0",
            "",
        ]
    ),
    _text,
)
_requests = st.builds(
    Req,
    request_id=st.from_regex(r"[A-Za-z0-9_=-]{8,56}", fullmatch=True),
    ts_ms=st.integers(0, 4_102_444_799_999),
    sid=_ids,
    cid=_ids,
    cat=st.one_of(st.just(""), _ids),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    status=st.sampled_from([200, 206, 304, 404, 0]),
    ip=_ips,
    user_agent=_agents,
    referer=st.one_of(
        st.just(""),
        st.just("https://eur01.safelinks.protection.outlook.com/?url=x"),
        st.from_regex(r"https?://[a-z.]{1,20}/[a-z%0-9]{0,10}", fullmatch=True),
    ),
    edge=st.sampled_from(["FRA56-P1", "IAD89-C1", "-"]),
    country=st.sampled_from(["DE", "US", ""]),
    nbytes=st.integers(0, 10**12),
    time_taken=st.sampled_from([0.0, 0.001, 0.012, 1.5, 12.25]),
    path=st.sampled_from(["/o.gif", "/other.png", "/%6F.gif"]),
    secret=st.sampled_from([SECRET, OLD_SECRET, b"wrong", None]),
    legacy=st.booleans(),
    scheme=st.sampled_from(["v1", "v2"]),
)
# ``now_ms`` near the generated times too, so the window's upper bound cuts through them.
_contexts = st.builds(
    DecodeContext,
    secrets=st.sampled_from([(SECRET,), (b"new", SECRET), ()]),
    ip_privacy=st.sampled_from(IP_MODES),
    pixel_only=st.booleans(),
    require_signature=st.booleans(),
    now_ms=st.one_of(st.none(), st.integers(1_136_073_600_000, 4_102_444_799_999)),
)


@SETTINGS
@given(st.lists(_requests, min_size=1, max_size=8), _contexts, st.booleans())
def test_standard_requests_equal(reqs: list[Req], ctx: DecodeContext, double: bool) -> None:
    lines = [standard_header()] + [standard_line(r, double_ua=double) for r in reqs]
    ref, fast = _pair(ctx)
    expected = [ref.parse_line(line) for line in lines]
    assert [fast.parse_line(line) for line in lines] == expected
    _, fast2 = _pair(ctx)
    assert fast2.parse_many(lines) == expected


@SETTINGS
@given(st.lists(_requests, min_size=1, max_size=8), _contexts, st.booleans())
def test_realtime_requests_equal(reqs: list[Req], ctx: DecodeContext, wide: bool) -> None:
    fields = WIDE_FIELDS if wide else DEFAULT_REALTIME_FIELDS
    records = [realtime_record(r, fields) for r in reqs]
    ref, fast = _rt_pair(ctx, fields)
    expected = [ref.decode(data) for data in records]
    assert [fast.decode(data) for data in records] == expected
    assert fast.decode_many(records) == ref.decode_many(records)
    lines = [data.decode() for data in records]
    assert fast.decode_line_many(lines) == [ref.decode_line(line) for line in lines]


def test_kpl_aggregates_decode_like_the_reference() -> None:
    reqs = [
        Req(request_id=f"kpl-{i}", ts_ms=1_700_000_000_000 + i, sid="s", cid="c", cat="")
        for i in range(3)
    ]
    records = [realtime_record(r, DEFAULT_REALTIME_FIELDS) for r in reqs]
    batch = [_aggregate(records), records[0]]
    ref, fast = _rt_pair(DecodeContext(secrets=(SECRET,)))
    out = fast.decode_many(batch)
    assert out == ref.decode_many(batch)
    assert len(out) == 4 and all(isinstance(h, Hit) for h in out)


# -- hostile input -------------------------------------------------------------------------


def _good_line() -> str:
    return standard_line(Req(request_id="r-1", ts_ms=1_700_000_000_000, sid="s", cid="c", cat=""))


def _mutations() -> st.SearchStrategy[str]:
    good = _good_line()
    return st.one_of(
        st.text(max_size=400),
        st.integers(0, len(good)).map(lambda i: good[:i]),
        st.lists(st.text(max_size=12), max_size=40).map("\t".join),
        st.tuples(st.integers(0, len(good)), st.text(max_size=8)).map(
            lambda t: good[: t[0]] + t[1] + good[t[0] :]
        ),
        st.sampled_from(["%", "%2", "%zz", "%25", "%C3", "%ff%fe", "%E2%82", "+", "\udcff"]).map(
            lambda esc: good.replace("sid=s", f"sid=s{esc}").replace("/o.gif", f"/o{esc}.gif", 1)
        ),
        st.just(good.replace("\t", " ")),
        st.just(good + "\t" + "x" * 200_000),
        st.just("#Fields: date time cs-uri-stem sc-status cs-method"),
        st.just('{"date": "2024-01-01", "cs-uri-stem": "/o.gif"}'),
        st.just(good.replace("200", "2OO", 1)),
        st.just(good.replace("-\tHit", "-\tHit\r\n")),
    )


@SETTINGS
@given(st.lists(_mutations(), min_size=1, max_size=6), st.booleans())
def test_standard_hostile_equal(lines: list[str], pixel_only: bool) -> None:
    ctx = DecodeContext(secrets=(SECRET,), pixel_only=pixel_only)
    ref, fast = _pair(ctx)
    expected = [ref.parse_line(line) for line in lines]
    assert fast.parse_many(lines) == expected
    assert (fast.headers, fast.blank) == (ref.headers, ref.blank)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=600),
        st.tuples(st.integers(0, 400), st.binary(max_size=6)).map(
            lambda t: (
                (g := realtime_record(_REQ, DEFAULT_REALTIME_FIELDS))[: t[0]] + t[1] + g[t[0] :]
            )
        ),
    )
)
def test_realtime_hostile_equal(data: bytes) -> None:
    ref, fast = _rt_pair(DecodeContext(secrets=(SECRET,), pixel_only=False))
    assert fast.decode(data) == ref.decode(data)
    assert fast.decode_many([data, data]) == ref.decode_many([data, data])
    text = data.decode("utf-8", "surrogateescape")
    assert fast.decode_line(text) == ref.decode_line(text)


_REQ = Req(request_id="hostile-1", ts_ms=1_700_000_000_000, sid="s%2", cid="c", cat="x")


# -- real samples --------------------------------------------------------------------------


def _provenance_fields(path: Path) -> list[str]:
    lines = (path.parent / (path.name + ".provenance")).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("field order"):
            return lines[i + 1].split()
    raise AssertionError(path)


@pytest.mark.parametrize("pixel_only", [False, True])
def test_samples_equal(samples: Path, classifier: Classifier, pixel_only: bool) -> None:
    ctx = DecodeContext(pixel_only=pixel_only, secrets=(SECRET,))
    compared = 0
    for path in sorted(samples.glob("cloudfront-standard-*.log")):
        lines = path.read_text().splitlines()
        ref = StandardParser(ctx, classifier=classifier)
        fast = native.standard_parser(ctx, classifier=classifier)
        assert fast.parse_many(lines) == [ref.parse_line(line) for line in lines], path.name
        compared += len(lines)
    for path in sorted(samples.glob("cloudfront-realtime-*.txt")):
        fields = tuple(_provenance_fields(path))
        records = path.read_bytes().splitlines(keepends=True)
        ref_rt = RealtimeDecoder(fields, ctx, classifier=classifier)
        fast_rt = native.realtime_decoder(fields, ctx, classifier=classifier)
        assert fast_rt.decode_many(records) == [ref_rt.decode(r) for r in records], path.name
        compared += len(records)
    assert compared >= 80


# -- NDJSON --------------------------------------------------------------------------------

_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=0, max_value=100),
    # 2**49 + 0.25: two shortest decimals tie (orjson picks the even one).
    st.sampled_from([0.0, -0.0, 1e-5, 9.99e-6, 1e16, 1e15 + 0.5, 0.1 + 0.2, 2**49 + 0.25]),
)
_hits = st.builds(
    Hit,
    request_id=st.text(),
    ts_ms=st.one_of(st.integers(0, 253_402_300_799_999), st.integers(-(10**12), 10**12)),
    source=st.sampled_from(["realtime", "standard", "s3"]),
    sid=st.one_of(st.none(), st.text()),
    cid=st.one_of(st.none(), st.text()),
    cat=st.text(),
    signature=st.sampled_from(["valid", "missing", "invalid"]),
    method=st.text(max_size=5),
    status=st.integers(0, 999),
    uri=st.text(),
    edge_location=st.text(max_size=10),
    client_ip=st.text(max_size=10),
    country=st.text(max_size=3),
    user_agent=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",))),
    client=st.text(max_size=10),
    device=st.text(max_size=10),
    machine=st.one_of(st.none(), st.text(max_size=10)),
    referer=st.text(),
    bytes=st.integers(0, 2**63 - 1),
    time_taken=_floats,
)


def _reference_ndjson(hits: list[Hit]) -> bytes:
    opt = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(h.to_json_dict(), option=opt) for h in hits)


@SETTINGS
@given(st.lists(_hits, max_size=5))
def test_ndjson_bytes_equal(hits: list[Hit]) -> None:
    assert native.ndjson(hits) == _reference_ndjson(hits)


def test_opens_parse_output_is_unchanged(tmp_path: Path) -> None:
    """The block path with the native writer equals the per-line path with orjson."""
    reqs = [
        Req(
            request_id=f"np-{i}",
            ts_ms=1_700_000_000_000 + 997 * i,
            sid=f"s{i}",
            cid='c é\t"q"',
            cat="k",
            secret=SECRET if i % 3 else None,
            time_taken=[0.0, 0.012, 1.5][i % 3],
        )
        for i in range(3000)
    ]
    body = [standard_header(), *(standard_line(r) for r in reqs), "garbage", "", "#Version: 1.0"]
    path = tmp_path / "E1.2024-01-01-00.x.gz"
    path.write_bytes(gzip.compress(("\n".join(body) + "\n").encode()))
    ctx = DecodeContext(secrets=(SECRET,))

    ref_summary = ParseSummary()
    ref = StandardParser(ctx, classifier=CLASSIFIER)
    with gzip.open(path, "rb") as fh:
        hits = list(decode_lines(ref.parse_line, iter_lines(fh), ref_summary, "f"))  # type: ignore[arg-type]
    expected = _reference_ndjson(hits)

    summary = ParseSummary()
    decode, _ = block_decoder("standard", ctx, classifier=CLASSIFIER)
    out = io.BytesIO()
    with gzip.open(path, "rb") as fh:
        blocks = iter_line_blocks(fh, chunk_size=4096)  # type: ignore[arg-type]
        for block_hits in decode_blocks(decode, blocks, summary, "f"):
            out.write(native.ndjson(block_hits))
    assert out.getvalue() == expected
    assert (summary.lines, summary.hits, summary.skipped) == (
        ref_summary.lines,
        ref_summary.hits,
        ref_summary.skipped,
    )
    assert summary.failures == ref_summary.failures and summary.hits == 3000


@SETTINGS
@given(st.binary(max_size=3000), st.integers(1, 64), st.integers(4, 200))
def test_line_blocks_flatten_to_lines(data: bytes, chunk: int, max_line: int) -> None:
    blocks = iter_line_blocks(io.BytesIO(data), chunk_size=chunk, max_line=max_line)  # type: ignore[arg-type]
    flat = [line for block in blocks for line in block]
    assert flat == _reference_lines(data, chunk, max_line)


def _reference_lines_iter(
    stream: BinaryIO, *, chunk_size: int = CHUNK, max_line: int = MAX_LINE
) -> Iterator[str | None]:
    """``iter_lines`` as it was before blocks existed (the reference for the block reader)."""
    pending = b""
    skipping = False
    read = stream.read
    while True:
        chunk = read(chunk_size)
        if not chunk:
            break
        if skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            skipping = False
            yield None
            chunk = chunk[cut + 1 :]
        if pending:
            chunk = pending + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending = chunk
            if len(pending) > max_line:
                pending = b""
                skipping = True
            continue
        pending = chunk[cut + 1 :]
        text = chunk[:cut].decode("utf-8", "replace")
        if cut > max_line:
            # Only a block longer than the limit can hold an over-long line.
            for line in text.split("\n"):
                yield None if len(line) > max_line else line
        else:
            yield from text.split("\n")
        if len(pending) > max_line:
            pending = b""
            skipping = True
    if skipping:
        yield None
    elif pending:
        yield pending.decode("utf-8", "replace")


def _reference_lines(data: bytes, chunk: int, max_line: int) -> list[str | None]:
    stream = io.BytesIO(data)
    return list(_reference_lines_iter(stream, chunk_size=chunk, max_line=max_line))  # type: ignore[arg-type]


# -- Arrow columns (the backfill's --direct path) -------------------------------------------


def _rows_equal_reference(lines: list[str], ctx: DecodeContext) -> None:
    """``parse_columns`` + the deferred lines' hits == the reference's countable hits as Arrow
    rows (as multisets: the core's rows come first), and the same failures at the same lines."""
    ref = StandardParser(ctx, classifier=CLASSIFIER)
    outs = [ref.parse_line(line) for line in lines]
    want = ArrowRows()([o for o in outs if isinstance(o, Hit) and o.is_hit]).to_pylist()
    fast = native.standard_parser(ctx, classifier=CLASSIFIER)
    assert isinstance(fast, native.NativeStandardParser)
    found, failures = fast.parse_columns(lines)
    # The column path's second step (backfill ``_decode_columns``): suspect rows redone.
    batch, redone = recheck_rows(fast, native_rows(fast.take_columns()), lines)
    failures += [(i, o) for i, o in redone if isinstance(o, Failure)]
    found += [o for _, o in redone if isinstance(o, Hit)]
    got = batch.to_pylist()
    got += ArrowRows()([h for h in found if h.is_hit]).to_pylist()
    assert sorted(map(repr, got)) == sorted(map(repr, want))
    failures.sort(key=lambda f: f[0])
    assert failures == [(i, o) for i, o in enumerate(outs) if isinstance(o, Failure)]
    assert (fast.headers, fast.blank) == (ref.headers, ref.blank)
    assert fast.take_columns()[0] == 0  # taking empties the core


@SETTINGS
@given(st.lists(_requests, min_size=1, max_size=8), _contexts, st.booleans())
def test_standard_columns_equal(reqs: list[Req], ctx: DecodeContext, double: bool) -> None:
    lines = [standard_header()] + [standard_line(r, double_ua=double) for r in reqs]
    _rows_equal_reference(lines, ctx)


@SETTINGS
@given(st.lists(_mutations(), min_size=1, max_size=6), st.booleans())
def test_standard_columns_hostile_equal(lines: list[str], pixel_only: bool) -> None:
    good = _good_line()
    _rows_equal_reference([good, *lines, good], DecodeContext(secrets=(SECRET,), pixel_only=True))
    _rows_equal_reference(lines, DecodeContext(secrets=(SECRET,), pixel_only=pixel_only))


def test_columns_are_the_hits_table_schema() -> None:
    fast = native.standard_parser(DecodeContext(secrets=(SECRET,)), classifier=CLASSIFIER)
    assert isinstance(fast, native.NativeStandardParser)
    found, failures = fast.parse_columns([_good_line()] * 3)
    rows = native_rows(fast.take_columns())
    assert (found, failures, rows.num_rows) == ([], [], 3)
    assert rows.schema == HITS_SCHEMA
    empty = native_rows(fast.take_columns())
    assert (empty.num_rows, empty.schema) == (0, HITS_SCHEMA)
