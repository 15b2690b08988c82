"""Standard logs: #Fields-driven layouts from 12 to 33+ fields, v2 JSON and W3C."""

from __future__ import annotations

import orjson
import pytest

from processor.core.builder import content_request_id
from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import STANDARD_FIELDS
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.standard import StandardParser
from tests.core.conftest import SECRET
from tests.core.render import Req, standard_header, standard_line

pytestmark = pytest.mark.unit

REQ = Req(
    request_id="SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
    ts_ms=1575493351000,
    sid="a&b=c%d",
    cid="spring 2026",
    cat="",
    secret=SECRET,
    user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "Chrome/78.0 Safari/537.36",
)


def parser(ctx: DecodeContext, classifier: Classifier) -> StandardParser:
    return StandardParser(ctx, classifier=classifier)


@pytest.mark.parametrize("n_fields", [15, 18, 19, 23, 24, 26, 33])
@pytest.mark.parametrize("with_header", [True, False])
def test_historical_layouts(
    ctx: DecodeContext, classifier: Classifier, n_fields: int, with_header: bool
) -> None:
    p = parser(ctx, classifier)
    text = (standard_header(n_fields) if with_header else "") + standard_line(
        REQ, n_fields=n_fields
    )
    outs = [p.parse_line(line) for line in text.splitlines()]
    hits = [o for o in outs if o is not None]
    assert len(hits) == 1
    hit = hits[0]
    assert isinstance(hit, Hit), hit
    assert (hit.sid, hit.cid, hit.cat, hit.signature) == ("a&b=c%d", "spring 2026", "", "valid")
    assert (hit.request_id, hit.ts_ms, hit.method, hit.status) == (
        REQ.request_id,
        REQ.ts_ms,
        "GET",
        200,
    )
    assert (hit.user_agent, hit.client, hit.device) == (REQ.user_agent, "Chrome", "desktop")
    assert hit.source == "standard"
    assert hit.time_taken == (0.012 if n_fields >= 19 else 0.0)


def test_twelve_field_lines_get_a_deterministic_content_id(
    ctx: DecodeContext, classifier: Classifier
) -> None:
    line = standard_line(REQ, n_fields=12)
    first = parser(ctx, classifier).parse_line(line)
    again = parser(ctx, classifier).parse_line(line + "\n")
    spaced = parser(ctx, classifier).parse_line(line.replace("\t", "  "))
    assert isinstance(first, Hit) and isinstance(again, Hit) and isinstance(spaced, Hit)
    assert first.request_id == again.request_id == spaced.request_id == content_request_id(line)
    assert first.request_id.startswith("h-")
    other = parser(ctx, classifier).parse_line(line.replace("192.0.2.10", "192.0.2.11"))
    assert isinstance(other, Hit) and other.request_id != first.request_id


def test_several_header_blocks_in_one_stream(ctx: DecodeContext, classifier: Classifier) -> None:
    old = Req(**{**REQ.__dict__, "request_id": "old-1"})
    new = Req(**{**REQ.__dict__, "request_id": "new-1"})
    text = (
        standard_header(19)
        + standard_line(old, n_fields=19)
        + "\n"
        + standard_header(33)
        + standard_line(new, n_fields=33)
        + "\n"
    )
    p = parser(ctx, classifier)
    hits = [o for o in p.parse_lines(text.splitlines()) if o is not None]
    assert [h.request_id for h in hits if isinstance(h, Hit)] == ["old-1", "new-1"]
    assert p.headers == 4


def test_header_with_reordered_and_future_fields(
    ctx: DecodeContext, classifier: Classifier
) -> None:
    fields = ["x-future-field", *reversed(STANDARD_FIELDS)]
    values = dict(zip(STANDARD_FIELDS, standard_line(REQ).split("\t"), strict=True))
    values["x-future-field"] = "whatever"
    p = parser(ctx, classifier)
    assert p.parse_line("#Fields:\t" + "\t".join(fields)) is None  # tab-separated header tokens
    hit = p.parse_line("\t".join(values[f] for f in fields))
    assert isinstance(hit, Hit) and hit.signature == "valid" and hit.request_id == REQ.request_id


def test_double_encoded_agent_and_twice_escaped_query(
    ctx: DecodeContext, classifier: Classifier
) -> None:
    line = standard_line(REQ, double_ua=True)
    assert "%2520" in line and "%2526" in line
    hit = parser(ctx, classifier).parse_line(line)
    assert isinstance(hit, Hit)
    assert hit.user_agent == REQ.user_agent
    assert hit.sid == "a&b=c%d"


def test_space_separated_copies_and_trailing_tab(
    ctx: DecodeContext, classifier: Classifier
) -> None:
    p = parser(ctx, classifier)
    spaced = p.parse_line(standard_line(REQ, sep=" "))
    trailing = p.parse_line(standard_line(REQ) + "\t")
    assert isinstance(spaced, Hit) and isinstance(trailing, Hit)
    assert spaced == trailing


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2019-12-04\t21:02:31\tLAX1", "field_count"),
        (standard_line(REQ).replace("2019-12-04", "2019-13-04"), "bad_timestamp"),
        (standard_line(REQ).replace("\t200\t", "\tOK\t"), "bad_status"),
        ('{"date": "2024-11-15"', "bad_json"),
        ("[1, 2]", "field_count"),
    ],
)
def test_bad_lines(ctx: DecodeContext, classifier: Classifier, line: str, reason: str) -> None:
    out = parser(ctx, classifier).parse_line(line)
    assert isinstance(out, Failure)
    assert out.reason == reason
    assert out.raw == line.encode()


def test_comments_and_blank_lines_are_skipped(ctx: DecodeContext, classifier: Classifier) -> None:
    p = parser(ctx, classifier)
    assert [p.parse_line(x) for x in ("#Version: 1.0", "", "   ", "\n")] == [None] * 4
    assert (p.headers, p.blank) == (1, 3)


def test_v2_json_lines(ctx: DecodeContext, classifier: Classifier) -> None:
    record = {
        "date": "2024-11-15",
        "time": "19:45:51",
        "timestamp(ms)": "1731699951183",
        "x-edge-location": "SOF50-P2",
        "c-ip": "192.0.2.44",
        "cs-method": "GET",
        "cs-uri-stem": "/o.gif",
        "sc-status": "200",
        "cs(User-Agent)": "Mozilla/5.0",
        "cs-uri-query": REQ.client_query().replace("%", "%25"),
        "x-edge-request-id": "v2-id",
        "c-country": "BG",
        "asn": "16509",
        "sc-bytes": "473",
        "time-taken": "0.002",
    }
    hit = parser(ctx, classifier).parse_line(orjson.dumps(record).decode())
    assert isinstance(hit, Hit)
    assert (hit.ts_ms, hit.country, hit.request_id, hit.signature) == (
        1731699951183,
        "BG",
        "v2-id",
        "valid",
    )
    # A bare Mozilla/5.0 outside Apple's list: Apple MPP all the same, probable.
    assert (hit.machine, hit.certainty, hit.bytes, hit.time_taken) == (
        "apple_mpp",
        "probable",
        473,
        0.002,
    )


def test_v2_w3c_with_millisecond_timestamps(ctx: DecodeContext, classifier: Classifier) -> None:
    header = (
        "#Fields: timestamp(ms) c-ip cs-method cs-uri-stem sc-status cs(User-Agent) "
        "cs-uri-query x-edge-request-id c-country"
    )
    line = " ".join(
        [
            "1731699951183",
            "192.0.2.44",
            "HEAD",
            "/o.gif",
            "304",
            "Mozilla/5.0%20(X11)",
            REQ.client_query().replace("%", "%25"),
            "v2-w3c",
            "FR",
        ]
    )
    p = parser(ctx, classifier)
    assert p.parse_line(header) is None
    hit = p.parse_line(line)
    assert isinstance(hit, Hit)
    assert (hit.ts_ms, hit.method, hit.status, hit.country, hit.machine) == (
        1731699951183,
        "HEAD",
        304,
        "FR",
        "unknown_bot",
    )
    assert hit.is_open


def test_legacy_pixels_are_unsigned_hits(classifier: Classifier) -> None:
    ctx = DecodeContext(secrets=(SECRET,))
    legacy = Req(
        request_id="legacy-1", ts_ms=1_400_000_000_000, sid="42", cid="weekly", cat="", legacy=True
    )
    hit = StandardParser(ctx, classifier=classifier).parse_line(standard_line(legacy))
    assert isinstance(hit, Hit)
    assert (hit.sid, hit.cid, hit.cat, hit.signature, hit.is_open) == (
        "42",
        "weekly",
        "weekly",
        "missing",
        True,
    )
