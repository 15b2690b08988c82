"""The Hit value (fast constructor, NDJSON contract) and the streaming reader."""

from __future__ import annotations

import dataclasses
import gzip
import io
from pathlib import Path

import pytest

from processor.core.hit import HIT_FIELDS, Hit, iso_ms, new_hit
from processor.core.reader import iter_lines, open_input

pytestmark = pytest.mark.unit

CONTRACT_KEYS = [
    "request_id", "ts", "source", "sid", "cid", "cat", "signature", "method", "status", "uri",
    "edge_location", "client_ip", "country", "user_agent", "client", "device", "machine",
    "proxy", "certainty", "referer", "bytes", "time_taken",
]  # fmt: skip

VALUES = (
    "rid", 1_700_000_000_007, "standard", "s", "c", "", "valid", "GET", 200, "/o.gif", "FRA2",
    "192.0.2.0", "DE", "ua", "Outlook", "desktop", None, "", 43, 0.001, "", "", "2026.12.1", "",
)  # fmt: skip


def test_fast_constructor_builds_an_ordinary_frozen_hit() -> None:
    fast = new_hit(*VALUES)
    slow = Hit(*VALUES)
    assert type(fast) is Hit
    assert fast == slow and hash(fast) == hash(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.sid = "other"  # type: ignore[misc]
    assert dataclasses.replace(fast, sid="x").sid == "x"
    assert Hit.from_wire(fast.to_wire()) == fast


def test_ndjson_keys_follow_the_contract() -> None:
    d = new_hit(*VALUES).to_json_dict()
    assert list(d) == CONTRACT_KEYS
    assert d["ts"] == "2023-11-14T22:13:20.007Z"
    # rules_version and signals are stored (``hits``) but not part of the NDJSON contract.
    assert set(HIT_FIELDS) == (set(CONTRACT_KEYS) - {"ts"}) | {"ts_ms", "rules_version", "signals"}


@pytest.mark.parametrize(
    ("ms", "iso"),
    [(0, "1970-01-01T00:00:00.000Z"), (1607374321541, "2020-12-07T20:52:01.541Z")],
)
def test_iso_ms(ms: int, iso: str) -> None:
    assert iso_ms(ms) == iso


def test_reader_plain_gzip_multimember_and_last_line(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(b"one\ntwo\r\nthr\xffee")
    gz = tmp_path / "b.log"  # gzip recognised by content, not name
    gz.write_bytes(gzip.compress(b"one\n") + gzip.compress(b"two\nthree\n"))
    with open_input(plain) as s:
        assert list(iter_lines(s, chunk_size=3)) == ["one", "two\r", "thr\ufffdee"]
    with open_input(gz) as s:
        assert list(iter_lines(s)) == ["one", "two", "three"]
    with pytest.raises(OSError):
        open_input(tmp_path / "missing.gz")


def test_reader_lines_across_chunk_boundaries() -> None:
    data = "".join(f"line-{i}-é\n" for i in range(1000)).encode()
    lines = list(iter_lines(io.BytesIO(data), chunk_size=7))
    assert lines == [f"line-{i}-é" for i in range(1000)]
