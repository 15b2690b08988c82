"""Real lines from public sources and years (../shared/samples): right values, nothing raises.

The samples are read from beside the repository (they are not copied into it); this module is
skipped when that folder is absent. Field lists for real-time files come from their provenance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser

pytestmark = pytest.mark.unit

ALL = DecodeContext(pixel_only=False, ip_privacy="full")


def _provenance_fields(path: Path) -> list[str]:
    lines = (path.parent / (path.name + ".provenance")).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("field order"):
            return lines[i + 1].split()
    raise AssertionError(f"no field order in {path}.provenance")


def _standard(samples: Path, name: str, classifier: Classifier) -> list[Hit | Failure | None]:
    p = StandardParser(ALL, classifier=classifier)
    return [p.parse_line(line) for line in (samples / name).read_text().splitlines()]


def test_every_standard_sample_line_decodes(samples: Path, classifier: Classifier) -> None:
    files = sorted(samples.glob("cloudfront-standard-*.log"))
    assert len(files) >= 13
    decoded = 0
    for path in files:
        for out in _standard(samples, path.name, classifier):
            assert not isinstance(out, Failure), (path.name, out)
            decoded += out is not None
    assert decoded >= 61


def test_every_realtime_sample_record_decodes(samples: Path, classifier: Classifier) -> None:
    widths = set()
    for path in sorted(samples.glob("cloudfront-realtime-*.txt")):
        fields = _provenance_fields(path)
        widths.add(len(fields))
        decoder = RealtimeDecoder(fields, ALL, classifier=classifier)
        for data in path.read_bytes().splitlines(keepends=True):
            assert isinstance(decoder.decode(data), Hit), (path.name, data[:80])
    assert {12, 40, 44} <= widths


def test_every_s3_sample_line_decodes(samples: Path, classifier: Classifier) -> None:
    for path in sorted(samples.glob("s3-access-*.log")):
        p = S3AccessParser(ALL, classifier=classifier)
        for line in path.read_text().splitlines():
            assert isinstance(p.parse_line(line), Hit), (path.name, line[:80])


def test_standard_values(samples: Path, classifier: Classifier) -> None:
    elastic = [
        h
        for h in _standard(samples, "cloudfront-standard-elastic-integrations.log", classifier)
        if h
    ]
    assert (
        isinstance(elastic[1], Hit)
        and elastic[1].client_ip == "2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6"
    )
    zero = elastic[7]
    assert isinstance(zero, Hit) and (zero.method, zero.status) == ("POST", 0)
    truncated = elastic[-1]  # 31 of 33 fields
    assert isinstance(truncated, Hit) and (truncated.status, truncated.uri) == (404, "/en(test)")
    assert truncated.user_agent.startswith("User-Agent: Mozilla/4.0 (compatible; MSIE 7.0;")

    rimutaka = [
        h
        for h in _standard(samples, "cloudfront-standard-rimutaka-feedbackfarm.log", classifier)
        if h
    ]
    head = next(h for h in rimutaka if isinstance(h, Hit) and h.method == "HEAD")
    assert head.machine == "unknown_bot"
    assert {h.status for h in rimutaka if isinstance(h, Hit)} == {200, 301}

    double = _standard(
        samples, "cloudfront-standard-awsdocs-2019-rev-double-encoded.log", classifier
    )
    single = _standard(samples, "cloudfront-standard-awsdocs-2019.log", classifier)
    assert [h for h in double if h] == [h for h in single if h]
    first = next(h for h in single if isinstance(h, Hit))
    assert first.ts_ms == 1575493351000 and first.edge_location == "LAX1"
    assert first.user_agent.startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    errors = [h for h in single if isinstance(h, Hit) and h.status == 502]
    assert len(errors) == 3

    netsuite = _standard(samples, "cloudfront-standard-datadog-pipeline.log", classifier)[0]
    assert isinstance(netsuite, Hit) and netsuite.user_agent == "NetSuite/2019.2 (SuiteScript)"
    assert (netsuite.method, netsuite.status) == ("POST", 401)

    old = _standard(samples, "cloudfront-standard-awsdocs-2014.log", classifier)
    statuses = [h.status for h in old if isinstance(h, Hit)]
    assert statuses == [200, 304]  # space-separated doc copy, 24 fields


def test_snowplow_pixel_lines(samples: Path, classifier: Classifier) -> None:
    ctx = DecodeContext(pixel_path="/i", pixel_only=True, ip_privacy="full")
    p = StandardParser(ctx, classifier=classifier)
    hits = [
        p.parse_line(x)
        for x in (samples / "cloudfront-standard-snowplow.log").read_text().splitlines()
    ]
    decoded = [h for h in hits if isinstance(h, Hit)]
    assert len(decoded) == 5  # the two /ice.png lines are another path
    assert decoded[2].user_agent.startswith("IE 7 - Mozilla/4.0 (compatible; MSIE 7.0;")
    p_ice = StandardParser(
        DecodeContext(pixel_path="/ice.png", ip_privacy="full"), classifier=classifier
    )
    ice = [
        p_ice.parse_line(x)
        for x in (samples / "cloudfront-standard-snowplow.log").read_text().splitlines()
    ]
    twelve = [h for h in ice if isinstance(h, Hit)]
    assert len(twelve) == 2
    assert all(h.request_id.startswith("h-") for h in twelve)  # 12-field lines have no id


def test_realtime_values(samples: Path, classifier: Classifier) -> None:
    path = samples / "cloudfront-realtime-claygregory-2020.txt"
    decoder = RealtimeDecoder(
        _provenance_fields(path),
        DecodeContext(pixel_path="/i", ip_privacy="full"),
        classifier=classifier,
    )
    hit = decoder.decode(path.read_bytes())
    assert isinstance(hit, Hit)
    assert (hit.ts_ms, hit.sid, hit.country, hit.edge_location, hit.bytes) == (
        1607374321541,
        "a88ec782-713b-4e0d-b2da-c408e5730834",
        "US",
        "EWR52-C4",
        485,
    )
    assert (
        hit.user_agent
        == "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:83.0) Gecko/20100101 Firefox/83.0"
    )

    own = samples / "cloudfront-realtime-ownstats.txt"
    gif = RealtimeDecoder(
        _provenance_fields(own),
        DecodeContext(pixel_path="/hello.gif", ip_privacy="truncate"),
        classifier=classifier,
    )
    outs = [gif.decode(line) for line in own.read_bytes().splitlines(keepends=True)]
    pixels = [h for h in outs if isinstance(h, Hit)]
    assert len(pixels) == 3 and outs[0] is None
    assert pixels[-1].client_ip == "2600:1700:2328::"

    wells = samples / "cloudfront-realtime-davidwells-2025.txt"
    hit44 = RealtimeDecoder(_provenance_fields(wells), ALL, classifier=classifier).decode(
        wells.read_bytes()
    )
    assert isinstance(hit44, Hit)
    assert (hit44.ts_ms, hit44.client_ip, hit44.time_taken) == (
        1759687234191,
        "32.142.164.10",
        0.253,
    )


def test_ownstats_query_escaping(samples: Path) -> None:
    """The logged query is decoded once, then parsed: ``%2526`` is a literal '&' in a value."""
    from urllib.parse import parse_qs

    from processor.core.text import decode_query_once

    own = (samples / "cloudfront-realtime-ownstats.txt").read_text().splitlines()[2]
    query = own.split("\t")[9]
    params = parse_qs(decode_query_once(query))
    assert params["ti"] == ["Map the Cloud - Azure Services & Regions"]
    assert params["u"] == ["http://localhost:3000/azure"]


def test_s3_values(samples: Path, classifier: Classifier) -> None:
    p = S3AccessParser(ALL, classifier=classifier)
    current = [
        p.parse_line(x)
        for x in (samples / "s3-access-awsdocs-current.log").read_text().splitlines()
    ]
    assert isinstance(current[0], Hit)
    assert (current[0].request_id, current[0].ts_ms, current[0].bytes) == (
        "3E57427F3EXAMPLE",
        1549411238000,
        113,
    )
    logstash = [
        p.parse_line(x) for x in (samples / "s3-access-logstash.log").read_text().splitlines()
    ]
    assert isinstance(logstash[1], Hit) and logstash[1].status == 304
    assert isinstance(logstash[2], Hit) and logstash[2].user_agent.startswith(
        "AWS-Support-TrustedAdvisor, aws-internal/3"
    )
