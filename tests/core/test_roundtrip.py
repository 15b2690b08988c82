"""Hypothesis round trips: a generated request, rendered as each format logs it, decodes back.

The same request must also decode to the same hit in every format (apart from what a format
cannot carry: standard and S3 logs have second precision, S3 has no edge location or country).
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import CANONICAL_REALTIME_FIELDS, DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser
from tests.core.conftest import SECRET
from tests.core.render import Req, realtime_record, s3_line, standard_line

pytestmark = pytest.mark.unit

# The round trip covers 2000-2100: a window wide enough for all of it (the window itself is
# tested in test_event_window.py).
CTX = DecodeContext(
    secrets=(SECRET,), ip_privacy="full", event_time_min_ms=0, now_ms=4_102_444_800_000
)
CLASSIFIER = Classifier()

value_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=24,
)
# Real agents never hold '%' (a percent with no space would be ambiguous with double encoding)
# nor a backslash or control characters.
agent_text = st.text(
    alphabet=st.characters(
        min_codepoint=32,
        max_codepoint=0x2FF,
        blacklist_characters='%\\"',
        blacklist_categories=("Cs",),
    ),
    min_size=0,
    max_size=60,
).filter(lambda s: s.strip() == s and s != "-")

requests = st.builds(
    Req,
    request_id=st.from_regex(r"[A-Za-z0-9_-]{20,56}==", fullmatch=True),
    ts_ms=st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999),
    sid=value_text,
    cid=value_text,
    cat=st.one_of(st.just(""), value_text),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    status=st.sampled_from([200, 206, 304, 0, 404, 502]),
    ip=st.one_of(st.ip_addresses().map(str), st.just("")),
    user_agent=agent_text,
    referer=st.one_of(
        st.just(""), st.from_regex(r"https://[a-z]{1,12}\.example/[a-z0-9/]{0,20}", fullmatch=True)
    ),
    edge=st.from_regex(r"[A-Z]{3}[0-9]{2}-[CP][0-9]", fullmatch=True),
    country=st.sampled_from(["US", "DE", ""]),
    nbytes=st.integers(min_value=0, max_value=10**9),
    time_taken=st.integers(min_value=0, max_value=99_999).map(lambda ms: ms / 1000),
    secret=st.sampled_from([SECRET, None]),
)

FIELD_SETS = st.sampled_from(
    [
        DEFAULT_REALTIME_FIELDS,
        CANONICAL_REALTIME_FIELDS,
        (
            "timestamp",
            "c-ip",
            "sc-status",
            "cs-method",
            "cs-uri-stem",
            "x-edge-request-id",
            "cs-user-agent",
            "cs-referer",
            "sc-bytes",
            "time-taken",
            "x-edge-location",
            "c-country",
        ),
    ]
)


def expected_hit(req: Req, source: str) -> dict[str, object]:
    return {
        "request_id": req.request_id,
        "sid": req.sid,
        "cid": req.cid,
        "cat": req.cat,
        # v1 over a newline is ambiguous, so never valid (DESIGN §3).
        "signature": (
            ("invalid" if "\n" in req.sid + req.cid + req.cat else "valid")
            if req.secret
            else "missing"
        ),
        "method": req.method,
        "status": req.status,
        "uri": "/o.gif",
        "client_ip": req.ip,
        "user_agent": req.user_agent,
        "referer": req.referer,
        "bytes": req.nbytes,
        "time_taken": req.time_taken,
        "source": source,
    }


def _subset(hit: Hit, keys: dict[str, object]) -> dict[str, object]:
    return {k: getattr(hit, k) for k in keys}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests, fields=FIELD_SETS)
def test_realtime_round_trip(req: Req, fields: tuple[str, ...]) -> None:
    hit = RealtimeDecoder(fields, CTX, classifier=CLASSIFIER).decode(realtime_record(req, fields))
    assert isinstance(hit, Hit), hit
    want = expected_hit(req, "realtime")
    assert _subset(hit, want) == want
    assert hit.ts_ms == req.ts_ms
    assert (hit.edge_location, hit.country) == (req.edge, req.country)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests, double_ua=st.booleans(), n_fields=st.sampled_from([19, 23, 24, 26, 33]))
def test_standard_round_trip(req: Req, double_ua: bool, n_fields: int) -> None:
    line = standard_line(req, double_ua=double_ua, n_fields=n_fields)
    hit = StandardParser(CTX, classifier=CLASSIFIER).parse_line(line)
    assert isinstance(hit, Hit), hit
    want = expected_hit(req, "standard")
    assert _subset(hit, want) == want
    assert hit.ts_ms == req.ts_ms - req.ts_ms % 1000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests, n_fields=st.sampled_from([17, 18, 24, 26, 27]))
def test_s3_round_trip(req: Req, n_fields: int) -> None:
    hit = S3AccessParser(CTX, classifier=CLASSIFIER).parse_line(s3_line(req, n_fields=n_fields))
    assert isinstance(hit, Hit), hit
    want = expected_hit(req, "s3")
    assert _subset(hit, want) == want
    assert hit.ts_ms == req.ts_ms - req.ts_ms % 1000


@settings(max_examples=100, deadline=None)
@given(req=requests)
def test_every_format_decodes_the_same_hit(req: Req) -> None:
    rt = RealtimeDecoder(CANONICAL_REALTIME_FIELDS, CTX, classifier=CLASSIFIER).decode(
        realtime_record(req, CANONICAL_REALTIME_FIELDS)
    )
    std = StandardParser(CTX, classifier=CLASSIFIER).parse_line(standard_line(req))
    s3 = S3AccessParser(CTX, classifier=CLASSIFIER).parse_line(s3_line(req))
    assert isinstance(rt, Hit) and isinstance(std, Hit) and isinstance(s3, Hit)
    second = req.ts_ms - req.ts_ms % 1000
    # Legacy standard logs carry no country and no ASN (the ASN shows in ``signals`` only).
    rt_as_std = dataclasses.replace(rt, source="standard", ts_ms=second, country="", signals="")
    assert std == rt_as_std
    assert s3 == dataclasses.replace(std, source="s3", edge_location="", country="")
