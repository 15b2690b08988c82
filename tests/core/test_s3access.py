"""S3 server access logs: bracketed time, quoted fields, bare '-', appended fields."""

from __future__ import annotations

import pytest

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.s3access import S3AccessParser, tokenize_s3
from tests.core.conftest import SECRET
from tests.core.render import Req, s3_line

pytestmark = pytest.mark.unit

REQ = Req(
    request_id="3E57427F3EXAMPLE",
    ts_ms=1549411238000,
    sid="sub 1",
    cid="c&1",
    cat="k",
    secret=SECRET,
    user_agent='Mozilla/5.0 (Windows NT 10.0; "quoted") Gecko/20100101 Firefox/119.0',
    referer="https://mail.example.com/inbox",
)


def test_tokenizer() -> None:
    line = 'own bkt [06/Feb/2019:00:00:38 +0000] - "GET /a b HTTP/1.1" "say \\"hi\\"" - x'
    assert tokenize_s3(line) == [
        "own",
        "bkt",
        "06/Feb/2019:00:00:38 +0000",
        "-",
        "GET /a b HTTP/1.1",
        'say "hi"',
        "-",
        "x",
    ]


@pytest.mark.parametrize("n_fields", [17, 18, 24, 26, 27])
def test_layouts(ctx: DecodeContext, classifier: Classifier, n_fields: int) -> None:
    hit = S3AccessParser(ctx, classifier=classifier).parse_line(s3_line(REQ, n_fields=n_fields))
    assert isinstance(hit, Hit), hit
    assert (hit.sid, hit.cid, hit.cat, hit.signature) == ("sub 1", "c&1", "k", "valid")
    assert (hit.request_id, hit.ts_ms, hit.method, hit.status, hit.source) == (
        "3E57427F3EXAMPLE",
        1549411238000,
        "GET",
        200,
        "s3",
    )
    assert (hit.user_agent, hit.referer, hit.client_ip) == (REQ.user_agent, REQ.referer, REQ.ip)
    assert (hit.bytes, hit.time_taken, hit.uri) == (473, 0.012, "/o.gif")


def test_other_keys_are_skipped(ctx: DecodeContext, classifier: Classifier) -> None:
    line = s3_line(Req(**{**REQ.__dict__, "path": "/index.html"}))
    assert S3AccessParser(ctx, classifier=classifier).parse_line(line) is None


def test_bare_dashes_and_short_lines(ctx: DecodeContext, classifier: Classifier) -> None:
    every = S3AccessParser(DecodeContext(pixel_only=False), classifier=classifier)
    batch = (
        "36c1 test-s3-ks [10/Sep/2019:15:11:07 +0000] 89.160.20.156 "
        "arn:aws:sts::123:assumed-role/a/b 8CD7A4A71E BATCH.DELETE.OBJECT key - 204 - - 1 - - - - -"
    )
    hit = every.parse_line(batch)
    assert isinstance(hit, Hit)
    assert (hit.method, hit.status, hit.user_agent, hit.referer, hit.machine) == (
        "",
        204,
        "",
        "",
        "unknown_bot",
    )
    short = every.parse_line("own bkt [06/Feb/2019:00:00:38 +0000] 1.2.3.4 - ID OP key")
    assert isinstance(short, Failure) and short.reason == "field_count"
    unterminated = every.parse_line('own bkt [06/Feb/2019:00:00:38 +0000] "GET /o.gif')
    assert isinstance(unterminated, Failure) and unterminated.reason == "unterminated_quote"
