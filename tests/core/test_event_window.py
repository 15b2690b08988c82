"""The plausible event-time window (issue #14.7, DESIGN §2): outside it a line is a bad line.

Every decoder path — real-time, standard, S3, the compiled fast paths and the backfill column
path — on times across and around both bounds, with ``now`` fixed by the context.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.backfill.encode import native_rows, recheck_rows
from processor.core import native
from processor.core.classify import Classifier
from processor.core.clock import IMPLAUSIBLE
from processor.core.context import EVENT_TIME_MAX_AHEAD_MS, EVENT_TIME_MIN_MS, DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser
from processor.settings import load_settings
from tests.core.conftest import SECRET
from tests.core.render import Req, realtime_record, s3_line, standard_header, standard_line

pytestmark = pytest.mark.unit

CLASSIFIER = Classifier()
NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z
CTX = DecodeContext(secrets=(SECRET,), now_ms=NOW)
LOW, HIGH = EVENT_TIME_MIN_MS, NOW + EVENT_TIME_MAX_AHEAD_MS
YEAR = 31_536_000_000
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

times = st.one_of(
    st.integers(LOW - 3_000, LOW + 3_000),
    st.integers(HIGH - 3_000, HIGH + 3_000),
    st.integers(LOW - 10 * YEAR, HIGH + 10 * YEAR),
)


def _req(ts_ms: int, status: int = 200) -> Req:
    return Req(request_id=f"r-{ts_ms}", ts_ms=ts_ms, sid="s", cid="c", cat="k", status=status)


def _judged(out: object, ts_ms: int) -> None:
    """A hit inside the window, an ``implausible_timestamp`` bad line outside it."""
    if LOW <= ts_ms <= HIGH:
        assert isinstance(out, Hit), out
        assert out.ts_ms == ts_ms
    else:
        assert isinstance(out, Failure), out
        assert out.reason == IMPLAUSIBLE


@SETTINGS
@given(times)
def test_realtime_every_path(ts_ms: int) -> None:
    record = realtime_record(_req(ts_ms), DEFAULT_REALTIME_FIELDS)
    ref = RealtimeDecoder(DEFAULT_REALTIME_FIELDS, CTX, classifier=CLASSIFIER)
    out = ref.decode(record)
    _judged(out, ts_ms)
    fast = native.realtime_decoder(DEFAULT_REALTIME_FIELDS, CTX, classifier=CLASSIFIER)
    assert fast.decode(record) == out
    assert fast.decode_many([record, record]) == [out, out]
    line = record.decode()
    as_line = ref.decode_line(line)  # a Failure keeps the raw text (no trailing newline)
    assert isinstance(as_line, Failure) == isinstance(out, Failure)
    assert fast.decode_line_many([line]) == [as_line]
    assert fast.decode_line(line) == as_line


@SETTINGS
@given(times, st.sampled_from([200, 404]))
def test_standard_every_path(ts_ms: int, status: int) -> None:
    second = ts_ms - ts_ms % 1000  # date + time carry whole seconds
    lines = [standard_header(), standard_line(_req(ts_ms, status))]
    ref = StandardParser(CTX, classifier=CLASSIFIER)
    outs = [ref.parse_line(line) for line in lines]
    if status == 200:
        _judged(outs[1], second)
    else:  # not countable, but a bad line all the same when its time is implausible
        assert isinstance(outs[1], Failure) == (not LOW <= second <= HIGH)
    fast = native.standard_parser(CTX, classifier=CLASSIFIER)
    assert fast.parse_many(lines) == outs
    fast.reset()
    assert [fast.parse_line(line) for line in lines] == outs
    # The backfill column path: the core's rows, then the suspect ones redone.
    cols = native.standard_parser(CTX, classifier=CLASSIFIER)
    assert isinstance(cols, native.NativeStandardParser)
    found, failures = cols.parse_columns(lines)
    batch, redone = recheck_rows(cols, native_rows(cols.take_columns()), lines)
    failures += [(i, o) for i, o in redone if isinstance(o, Failure)]
    found += [o for _, o in redone if isinstance(o, Hit)]
    assert failures == [(i, o) for i, o in enumerate(outs) if isinstance(o, Failure)]
    kept = batch.num_rows + sum(h.is_hit for h in found)
    assert kept == sum(isinstance(o, Hit) and o.is_hit for o in outs)


@SETTINGS
@given(times)
def test_s3(ts_ms: int) -> None:
    out = S3AccessParser(CTX, classifier=CLASSIFIER).parse_line(s3_line(_req(ts_ms)))
    _judged(out, ts_ms - ts_ms % 1000)


# The examples of the issue, written as each format writes them (no renderer for year 1).
ABSURD = ["0001-01-01", "1970-01-01", "2005-12-31", "2300-01-01", "9999-12-31"]


def _standard_at(day: str) -> str:
    line = standard_line(_req(1_700_000_000_000))
    return day + line[len("2023-11-14") :]


@pytest.mark.parametrize("day", ABSURD)
def test_absurd_days_are_bad_lines_on_every_standard_path(day: str) -> None:
    lines = [standard_header(), _standard_at(day)]
    ref = StandardParser(CTX, classifier=CLASSIFIER).parse_many(lines)
    assert isinstance(ref[1], Failure)
    assert ref[1].reason == IMPLAUSIBLE
    assert native.standard_parser(CTX, classifier=CLASSIFIER).parse_many(lines) == ref


@pytest.mark.parametrize("day", ["01/Jan/0001", "01/Jan/1970", "01/Jan/2300", "31/Dec/9999"])
@pytest.mark.parametrize("offset", ["+0000", "+1400", "-1200"])
def test_absurd_days_are_bad_lines_in_s3(day: str, offset: str) -> None:
    line = s3_line(_req(1_700_000_000_000)).replace(
        "14/Nov/2023:22:13:20 +0000", f"{day}:00:00:00 {offset}"
    )
    assert f"{day}:00:00:00" in line
    out = S3AccessParser(CTX, classifier=CLASSIFIER).parse_line(line)
    assert isinstance(out, Failure)
    assert out.reason == IMPLAUSIBLE


@pytest.mark.parametrize("stamp", ["0.000", "1136073599.999", "1800086400.001", "253402300799.999"])
def test_absurd_realtime_stamps(stamp: str) -> None:
    line = realtime_record(_req(1_700_000_000_000), DEFAULT_REALTIME_FIELDS).decode()
    line = stamp + line[line.index("\t") :]
    ref = RealtimeDecoder(DEFAULT_REALTIME_FIELDS, CTX, classifier=CLASSIFIER).decode_line(line)
    assert isinstance(ref, Failure)
    assert ref.reason == IMPLAUSIBLE
    fast = native.realtime_decoder(DEFAULT_REALTIME_FIELDS, CTX, classifier=CLASSIFIER)
    assert fast.decode_line(line) == ref


def test_now_moves_with_the_clock_unless_fixed() -> None:
    live = DecodeContext()
    line = realtime_record(_req(1_700_000_000_000), DEFAULT_REALTIME_FIELDS).decode()
    future = str((HIGH + 10 * YEAR) // 1000) + line[line.index("\t") :]
    assert isinstance(RealtimeDecoder(ctx=live).decode_line(line), Hit)
    assert isinstance(RealtimeDecoder(ctx=live).decode_line(future), Failure)


def test_settings_reach_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENS_EVENT_TIME_MIN", "2020-01-01")
    monkeypatch.setenv("OPENS_EVENT_TIME_MAX_AHEAD", "2h")
    ctx = load_settings().decode_context()
    assert ctx.event_time_min_ms == 1_577_836_800_000
    assert ctx.event_time_max_ahead_ms == 7_200_000
    monkeypatch.delenv("OPENS_EVENT_TIME_MIN")
    monkeypatch.delenv("OPENS_EVENT_TIME_MAX_AHEAD")
    default = load_settings().decode_context()
    assert (default.event_time_min_ms, default.event_time_max_ahead_ms) == (
        EVENT_TIME_MIN_MS,
        EVENT_TIME_MAX_AHEAD_MS,
    )
