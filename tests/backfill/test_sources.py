"""Key layouts, date windows, the background reader and format sniffing (no services)."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processor.backfill.run import sniff_format
from processor.backfill.sources import LogObject, in_window, key_layout, list_local
from processor.backfill.stream import ChunkStream, ObjectReadError

pytestmark = pytest.mark.unit


def _t(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "kind", "start", "end"),
    [
        # Legacy standard logging, the example from AWS's documentation.
        (
            "example-prefix/EMLARXS9EXAMPLE.2019-11-14-20.RT4KCN4SGK9.gz",
            "standard",
            _t(2019, 11, 14, 19),
            _t(2019, 11, 14, 22),
        ),
        # Standard logging v2 to S3, partitioned path, 8-hex unique id.
        (
            "AWSLogs/123456789012/CloudFront/E1ABC/2025/01/02/03/E1ABC.2025-01-02-03.0a1b2c3d.gz",
            "standard",
            _t(2025, 1, 2, 2),
            _t(2025, 1, 2, 5),
        ),
        # S3 access logs, simple prefix: delivery time; records may be up to a day older.
        (
            "s3logs/2025-11-24-17-05-17-ABCDEF0123456789",
            "s3",
            _t(2025, 11, 23, 16, 5, 17),
            _t(2025, 11, 24, 18, 5, 17),
        ),
        # S3 access logs, date-partitioned by event time: that UTC day.
        (
            "p/123456789012/eu-west-1/pixel-bucket/2025/11/24/2025-11-24-00-00-00-ABCDEF01",
            "s3",
            _t(2025, 11, 23, 23),
            _t(2025, 11, 25, 1),
        ),
        ("notes/readme.txt", None, None, None),
        ("E1ABC.2025-13-02-03.0a1b.gz", None, None, None),  # month 13: not a date
    ],
)
def test_key_layouts(key: str, kind: str | None, start: datetime, end: datetime) -> None:
    assert key_layout(key) == (kind, start, end)


def test_window_has_an_hour_of_slack_either_side() -> None:
    kind, start, end = key_layout("E1.2025-11-24-16.x.gz")
    obj = LogObject("x", "e", 1, kind, start, end)
    assert in_window(obj, _t(2025, 11, 24, 17, 59), None)  # the next hour: still in the slack
    assert not in_window(obj, _t(2025, 11, 24, 18), None)
    assert in_window(obj, None, _t(2025, 11, 24, 15, 1))
    assert not in_window(obj, None, _t(2025, 11, 24, 15))
    unknown = LogObject("y", "e", 1, None, None, None)
    assert in_window(unknown, _t(2030, 1, 1), _t(2030, 1, 2))


def test_local_listing_is_sorted_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path
    (root / "b").mkdir()
    (root / "b" / "2.log").write_text("x")
    (root / "a.log").write_text("x")
    (root / ".hidden").write_text("x")
    names = [Path(o.uri).name for o in list_local(str(root))]
    assert names == ["a.log", "2.log"]


def _read_all(stream: ChunkStream) -> bytes:
    out = []
    while chunk := stream.read():
        out.append(chunk)
    return b"".join(out)


def _opener(data: bytes):  # type: ignore[no-untyped-def]
    return lambda: io.BytesIO(data)


def test_stream_reads_plain_and_multi_member_gzip() -> None:
    text = b"".join(b"line %d\n" % i for i in range(100_000))
    assert _read_all(ChunkStream(_opener(text), chunk=4096)) == text
    multi = gzip.compress(text[:1000]) + gzip.compress(text[1000:]) + b"\0" * 8
    assert _read_all(ChunkStream(_opener(multi), chunk=4096)) == text


def test_stream_reports_truncated_and_corrupt_gzip_after_the_good_part() -> None:
    text = b"".join(b"line %d\n" % i for i in range(200_000))
    packed = gzip.compress(text)
    got = []
    stream = ChunkStream(_opener(packed[: len(packed) // 2]), chunk=4096)
    with pytest.raises(ObjectReadError) as err:
        while chunk := stream.read():
            got.append(chunk)
    assert err.value.reason == "truncated"
    assert 0 < len(b"".join(got)) < len(text)
    assert text.startswith(b"".join(got))
    broken = bytearray(packed)
    broken[len(broken) // 2 : len(broken) // 2 + 64] = b"\xff" * 64
    with pytest.raises(ObjectReadError) as err:
        _read_all(ChunkStream(_opener(bytes(broken)), chunk=4096))
    assert err.value.reason in ("corrupt_gzip", "truncated")


def test_stream_close_stops_the_reader_early() -> None:
    stream = ChunkStream(_opener(b"x\n" * 5_000_000), chunk=1024)
    assert stream.read()
    stream.close()
    assert stream.read() == b""


@pytest.mark.parametrize(
    ("first", "fmt"),
    [
        (b"#Version: 1.0\n#Fields: date time\n", "standard"),
        (b'\n{"date":"2024-11-15","time":"19:45:51"}\n', "standard"),
        (b"2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\n", "standard"),
        (
            b"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be pixel "
            b'[06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT o.gif "GET'
            b' /o.gif HTTP/1.1" 200\n',
            "s3",
        ),
        (b"PK\x03\x04 a zip file", None),
        (b"", None),
    ],
)
def test_sniff_format(first: bytes, fmt: str | None) -> None:
    assert sniff_format(first) == fmt
