"""Real-time records: positions from CloudFront's canonical order, any selected field set."""

from __future__ import annotations

import base64

import pytest

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import (
    CANONICAL_REALTIME_FIELDS,
    DEFAULT_REALTIME_FIELDS,
    UnknownFieldError,
    canonical_order,
)
from processor.core.hit import Hit
from processor.core.kpl import KPL_MAGIC, deaggregate
from processor.core.outcome import Failure
from processor.core.realtime import RealtimeDecoder
from tests.core.conftest import SECRET
from tests.core.render import Req, realtime_record

pytestmark = pytest.mark.unit

REQ = Req(
    request_id="6PfZe0cc_AjXUjFuGnL9pGOmFdUx8xR8ZU8nr44JYJWi-DaeJjcxkw==",
    ts_ms=1607374321541,
    sid="sub&1 ü",
    cid="spring/2026",
    cat="news",
    ip="2600:1700:2328:7f60:fc5c:8867:7522:1bef",
    referer="https://mail.example.com/",
    secret=SECRET,
)

LAYOUTS = {
    "default": DEFAULT_REALTIME_FIELDS,
    "aws-pixel-sample": ("timestamp", "c-ip", "cs-user-agent", "cs-uri-query"),
    "stem-only": ("timestamp", "x-edge-request-id", "sc-status", "cs-method", "cs-uri-stem"),
    "all-69": CANONICAL_REALTIME_FIELDS,
    "2020-all-40": tuple(f for f in CANONICAL_REALTIME_FIELDS[:41] if f != "s-ip"),
}


def test_canonical_order_ignores_the_configured_order() -> None:
    assert canonical_order(["asn", "timestamp", "c-ip", "asn"]) == ("timestamp", "c-ip", "asn")
    with pytest.raises(UnknownFieldError) as err:
        canonical_order(["timestamp", "cs(User-Agent)"])
    assert err.value.names == ("cs(User-Agent)",)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts(layout: str, ctx: DecodeContext, classifier: Classifier) -> None:
    fields = LAYOUTS[layout]
    decoder = RealtimeDecoder(reversed(fields), ctx, classifier=classifier)
    hit = decoder.decode(realtime_record(REQ, fields))
    assert isinstance(hit, Hit), hit
    assert (hit.sid, hit.cid, hit.cat, hit.signature) == ("sub&1 ü", "spring/2026", "news", "valid")
    assert hit.ts_ms == REQ.ts_ms
    assert hit.source == "realtime"
    if "c-ip" in fields:
        assert hit.client_ip == REQ.ip
    if "cs-user-agent" in fields or "cs-headers" in fields:
        assert hit.user_agent == REQ.user_agent
        assert (hit.client, hit.device) == ("Apple Mail", "mobile")
    if "x-edge-request-id" in fields:
        assert hit.request_id == REQ.request_id
    else:
        assert hit.request_id.startswith("h-")
    if "cs-method" in fields:
        assert hit.method == "GET" and hit.status == 200 and hit.is_open
    if "cs-referer" in fields:
        assert hit.referer == REQ.referer
    if "c-country" in fields:
        assert hit.country == "DE"


def test_values_of_the_default_layout(ctx: DecodeContext, classifier: Classifier) -> None:
    decoder = RealtimeDecoder(DEFAULT_REALTIME_FIELDS, ctx, classifier=classifier)
    hit = decoder.decode(realtime_record(REQ, DEFAULT_REALTIME_FIELDS))
    assert isinstance(hit, Hit)
    assert hit.to_json_dict() == {
        "request_id": REQ.request_id,
        "ts": "2020-12-07T20:52:01.541Z",
        "source": "realtime",
        "sid": "sub&1 ü",
        "cid": "spring/2026",
        "cat": "news",
        "signature": "valid",
        "method": "GET",
        "status": 200,
        "uri": "/o.gif",
        "edge_location": "FRA56-P1",
        "client_ip": REQ.ip,
        "country": "DE",
        "user_agent": REQ.user_agent,
        "client": "Apple Mail",
        "device": "mobile",
        "machine": None,
        "proxy": "",
        "certainty": "",
        "referer": REQ.referer,
        "bytes": 473,
        "time_taken": 0.012,
    }


def test_ip_privacy_is_applied(classifier: Classifier) -> None:
    record = realtime_record(REQ, DEFAULT_REALTIME_FIELDS)
    for mode, expected in (("truncate", "2600:1700:2328::"), ("drop", ""), ("full", REQ.ip)):
        decoder = RealtimeDecoder(
            DEFAULT_REALTIME_FIELDS, DecodeContext(ip_privacy=mode), classifier=classifier
        )
        hit = decoder.decode(record)
        assert isinstance(hit, Hit) and hit.client_ip == expected


def test_other_paths_are_none_unless_all(classifier: Classifier) -> None:
    record = realtime_record(
        Req(request_id="r1", ts_ms=1_700_000_000_001, sid="s", cid="c", cat="", path="/i"),
        DEFAULT_REALTIME_FIELDS,
    )
    assert RealtimeDecoder(classifier=classifier).decode(record) is None
    every = RealtimeDecoder(ctx=DecodeContext(pixel_only=False), classifier=classifier)
    hit = every.decode(record)
    assert isinstance(hit, Hit)
    assert (hit.uri, hit.sid, hit.cid, hit.is_hit) == ("/i", None, None, False)


@pytest.mark.parametrize(
    ("method", "status", "machine", "is_hit"),
    [("HEAD", 200, "unknown_bot", True), ("POST", 200, None, False), ("GET", 0, None, False)],
)
def test_methods_and_statuses(
    classifier: Classifier, method: str, status: int, machine: str | None, is_hit: bool
) -> None:
    req = Req(request_id="r", ts_ms=1_700_000_000_000, sid="s", cid="c", cat="")
    record = realtime_record(
        Req(**{**req.__dict__, "method": method, "status": status}), DEFAULT_REALTIME_FIELDS
    )
    hit = RealtimeDecoder(classifier=classifier).decode(record)
    assert isinstance(hit, Hit)
    assert (hit.method, hit.status, hit.machine, hit.is_hit) == (method, status, machine, is_hit)


def test_trailing_newline_crlf_and_no_newline_decode_alike(classifier: Classifier) -> None:
    decoder = RealtimeDecoder(classifier=classifier)
    bare = realtime_record(REQ, DEFAULT_REALTIME_FIELDS, newline=False)
    outs = [decoder.decode(data) for data in (bare, bare + b"\n", bare + b"\r\n")]
    assert outs[0] == outs[1] == outs[2]
    assert isinstance(outs[0], Hit)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.replace(b"\t", b"\t\t", 1), "field_count"),
        (lambda b: b.split(b"\t", 1)[1], "field_count"),
        (lambda b: b"x" + b, "bad_timestamp"),
        (lambda b: b"\n", "empty"),
    ],
)
def test_bad_records_are_failures_with_the_raw_bytes(
    classifier: Classifier, mutate: object, reason: str
) -> None:
    assert callable(mutate)
    data = mutate(realtime_record(REQ, DEFAULT_REALTIME_FIELDS))
    out = RealtimeDecoder(classifier=classifier).decode(data)
    assert isinstance(out, Failure)
    assert (out.reason, out.raw) == (reason, data)


def _aggregate(records: list[bytes]) -> bytes:
    from aws_kinesis_agg import aggregator as agg

    aggregator = agg.RecordAggregator()
    for i, data in enumerate(records):
        aggregator.add_user_record(f"pk-{i % 2}", data)
    _, _, blob = aggregator.clear_and_get().get_contents()
    return bytes(blob)


def test_kpl_aggregated_input_is_deaggregated(classifier: Classifier) -> None:
    records = [
        realtime_record(
            Req(request_id=f"r{i}", ts_ms=1_700_000_000_000 + i, sid=f"s{i}", cid="c", cat=""),
            DEFAULT_REALTIME_FIELDS,
        )
        for i in range(3)
    ]
    blob = _aggregate(records)
    assert blob.startswith(KPL_MAGIC)
    assert deaggregate(blob) == records
    decoder = RealtimeDecoder(classifier=classifier)
    hits = decoder.decode_kinesis(blob)
    assert [h.sid for h in hits if isinstance(h, Hit)] == ["s0", "s1", "s2"]
    assert isinstance(decoder.decode(blob), Failure)  # decode() is for one plain record
    assert decoder.decode_many([records[0], blob]) == [hits[0], *hits]


def test_deaggregation_is_a_no_op_for_plain_and_corrupt_data() -> None:
    plain = b"1607374321.541\t127.0.0.1\n"
    assert deaggregate(plain) == [plain]
    fake = KPL_MAGIC + b"\x1a\x05hello" + b"\x00" * 16  # wrong MD5
    assert deaggregate(fake) == [fake]
    assert deaggregate(KPL_MAGIC) == [KPL_MAGIC]
    assert base64.b64encode(KPL_MAGIC).startswith(b"84mawg")
