"""Decoding helpers, timestamps and IP privacy: small table tests."""

from __future__ import annotations

import pytest

from processor.core.clock import S3Clock, StandardClock, epoch_ms_from_seconds_text
from processor.core.privacy import ip_treatment, truncate_ip
from processor.core.text import (
    decode_query_once,
    decode_ua_auto,
    decode_ua_once,
    form_value,
    split_header_lines,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        ("Mozilla/5.0%20(Windows%20NT%2010.0)", "Mozilla/5.0 (Windows NT 10.0)"),
        ("Mozilla/5.0%2520(Windows%2520NT%252010.0)", "Mozilla/5.0 (Windows NT 10.0)"),
        ("NetSuite/2019.2%2520(SuiteScript)", "NetSuite/2019.2 (SuiteScript)"),
        ("IE%25207%2520-%2520Mozilla/4.0", "IE 7 - Mozilla/4.0"),
        ("User-Agent:%20Mozilla/4.0%20(compatible)", "User-Agent: Mozilla/4.0 (compatible)"),
        ("curl/8.7.1", "curl/8.7.1"),
        ("-", ""),
    ],
)
def test_standard_user_agent_is_decoded_once_or_twice(logged: str, expected: str) -> None:
    assert decode_ua_auto(logged) == expected


def test_realtime_user_agent_is_decoded_exactly_once() -> None:
    assert decode_ua_once("a%2520b") == "a%20b"
    assert decode_ua_once("Mozilla/5.0%20(X11)") == "Mozilla/5.0 (X11)"
    assert decode_ua_once("-") == ""


def test_query_is_decoded_once_then_form_values_again() -> None:
    logged = "sid=a%2526b&cid=x%252By&cat=tz%252FBerlin"
    once = decode_query_once(logged)
    assert once == "sid=a%26b&cid=x%2By&cat=tz%2FBerlin"
    values = dict(part.split("=") for part in once.split("&"))
    assert {k: form_value(v) for k, v in values.items()} == {
        "sid": "a&b",
        "cid": "x+y",
        "cat": "tz/Berlin",
    }
    assert form_value("a+b") == "a b"


def test_headers_are_split_on_encoded_newline_before_decoding() -> None:
    value = "Host:px.example.com%0AUser-Agent:Mozilla/5.0%20(X)%0AX-Odd:a%250Ab%0A"
    assert split_header_lines(value) == [
        ("Host", "px.example.com"),
        ("User-Agent", "Mozilla/5.0 (X)"),
        ("X-Odd", "a%0Ab"),  # an encoded %0A inside a value stays inside it
    ]
    assert split_header_lines("-") == []


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1607374321.541", 1607374321541),
        ("1759687234.191", 1759687234191),
        ("1607374321.5", 1607374321500),
        ("1607374321", 1607374321000),
        ("1607374321.5419", 1607374321541),
        ("-", None),
        ("nan", None),
        ("1e9", None),
        ("-5.000", None),
        ("", None),
    ],
)
def test_realtime_timestamp_to_epoch_ms(text: str, ms: int | None) -> None:
    assert epoch_ms_from_seconds_text(text) == ms


def test_standard_clock() -> None:
    clock = StandardClock()
    assert clock.epoch_ms("2019-12-04", "21:02:31") == 1575493351000
    assert clock.epoch_ms("2019-12-04", "21:02:31") == 1575493351000  # cached path
    assert clock.epoch_ms("1970-01-01", "00:00:00") == 0
    assert clock.epoch_ms("2019-13-04", "21:02:31") is None
    assert clock.epoch_ms("2019-12-04", "25:02:31") is None
    assert clock.epoch_ms("2019-12-04", "21:02") is None
    assert clock.epoch_ms("04/12/2019", "21:02:31") is None


def test_s3_clock_with_offsets() -> None:
    clock = S3Clock()
    assert clock.epoch_ms("06/Feb/2019:00:00:38 +0000") == 1549411238000
    # 16:42:07 at -0500 is 21:42:07 UTC
    assert clock.epoch_ms("10/Feb/2012:16:42:07 -0500") == 1328910127000
    assert clock.epoch_ms("06/Foo/2019:00:00:38 +0000") is None
    assert clock.epoch_ms("06/Feb/2019:00:00:38") is None
    assert clock.epoch_ms("31/Feb/2019:00:00:38 +0000") is None


@pytest.mark.parametrize(
    ("ip", "truncated"),
    [
        ("192.0.2.10", "192.0.2.0"),
        ("13.248.48.10", "13.248.48.0"),
        ("2600:1700:2328:7f60:fc5c:8867:7522:1bef", "2600:1700:2328::"),
        ("2a02:cf40:add:4002:91f2:a9b2:e09a:6fc6", "2a02:cf40:add::"),
        ("::1", "::"),
        ("-", ""),
        ("localhost:8080", ""),
        ("256.1.1.1", ""),
        ("", ""),
    ],
)
def test_ip_truncation(ip: str, truncated: str) -> None:
    assert truncate_ip(ip) == truncated
    assert ip_treatment("truncate")(ip) == truncated


def test_ip_privacy_modes() -> None:
    assert ip_treatment("full")("192.0.2.10") == "192.0.2.10"
    assert ip_treatment("full")("-") == ""
    assert ip_treatment("drop")("192.0.2.10") == ""
