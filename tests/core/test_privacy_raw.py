"""Raw records kept for debugging (dead letters) carry the treated client IP, nothing else
changed."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.context import IpPrivacy
from processor.core.fields import DEFAULT_REALTIME_FIELDS, STANDARD_FIELDS, canonical_order
from processor.core.privacy import (
    ip_treatment,
    raw_treatment,
    treat_ips_in_text,
    truncate_ip,
)

pytestmark = pytest.mark.unit

FIELDS = canonical_order(DEFAULT_REALTIME_FIELDS)
C_IP = FIELDS.index("c-ip")
XFF = FIELDS.index("x-forwarded-for")

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: a.compressed)
any_ip = st.one_of(ipv4, ipv6)
# Field values with no IP literal in them (no dots or colons between digits).
plain = st.text(alphabet=st.sampled_from("abcxyzGET/ogif?=&%-_ 0123456789"), max_size=20)


def _record(values: list[str]) -> bytes:
    return "\t".join(values).encode()


@settings(max_examples=300)
@given(ip=any_ip, xff=st.lists(any_ip, max_size=3), others=st.lists(plain, min_size=len(FIELDS)))
def test_truncate_treats_the_ip_fields_and_keeps_every_other_field(
    ip: str, xff: list[str], others: list[str]
) -> None:
    values = others[: len(FIELDS)]
    values[C_IP] = ip
    values[XFF] = ",".join(xff) or "-"
    out = raw_treatment(FIELDS, "truncate")(_record(values)).decode().split("\t")
    assert len(out) == len(FIELDS)
    assert out[C_IP] == truncate_ip(ip)
    assert out[XFF] == (",".join(truncate_ip(x) for x in xff) or "-")
    for i, (a, b) in enumerate(zip(values, out, strict=True)):
        if i not in (C_IP, XFF):
            assert a == b, FIELDS[i]


@settings(max_examples=200)
@given(ip=any_ip, others=st.lists(plain, min_size=len(FIELDS)))
def test_full_keeps_the_record_and_drop_leaves_no_address(ip: str, others: list[str]) -> None:
    values = others[: len(FIELDS)]
    values[C_IP] = ip
    raw = _record(values)
    assert raw_treatment(FIELDS, "full")(raw) == raw
    dropped = raw_treatment(FIELDS, "drop")(raw).decode()
    assert dropped.split("\t")[C_IP] == "-"
    assert ip not in dropped.split("\t")


@settings(max_examples=200)
@given(ip=ipv4, junk=st.text(max_size=30), cut=st.integers(0, len(FIELDS) - 1))
def test_a_record_with_the_wrong_field_count_loses_its_address_too(
    ip: str, junk: str, cut: int
) -> None:
    """Most dead letters are records that did not decode: the IP has no known position then, and
    is still found and treated."""
    values = ["-"] * len(FIELDS)
    values[C_IP] = ip
    raw = _record([*values[:cut], junk, *values[cut:]])  # one field too many
    out = raw_treatment(FIELDS, "truncate")(raw).decode("utf-8", "surrogateescape")
    host = ipaddress.ip_address(ip)
    if str(host) != truncate_ip(ip):
        assert not re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d.])", out)
    assert truncate_ip(ip) in out


@given(raw=st.binary(max_size=400), mode=st.sampled_from(["truncate", "full", "drop"]))
def test_any_bytes_survive(raw: bytes, mode: IpPrivacy) -> None:
    treat = raw_treatment(FIELDS, mode)
    out = treat(raw)
    if mode == "full":
        assert out == raw


def test_standard_lines_and_examples() -> None:
    line = "\t".join(
        {"c-ip": "198.51.100.77", "x-forwarded-for": "2001:db8:abcd:12::1"}.get(f, "-")
        for f in STANDARD_FIELDS
    ).encode()
    out = raw_treatment(STANDARD_FIELDS, "truncate")(line).decode().split("\t")
    assert out[STANDARD_FIELDS.index("c-ip")] == "198.51.100.0"
    assert out[STANDARD_FIELDS.index("x-forwarded-for")] == "2001:db8:abcd::"
    truncate = ip_treatment("truncate")
    # Times, versions and non-addresses are left alone.
    text = "2026-11-20 08:00:01 v1.2.3 fe80 12:34:56 10.1.2.3 [::ffff:10.0.0.9]"
    assert treat_ips_in_text(text, truncate) == (
        "2026-11-20 08:00:01 v1.2.3 fe80 12:34:56 10.1.2.0 [::]"
    )
