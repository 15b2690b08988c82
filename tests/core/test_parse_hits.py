"""``opens parse`` prints hits only (DESIGN §2/§4) on every decoder path, and salvages a damaged
gzip exactly like ``opens backfill`` (issue #14, finding 9)."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import orjson
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from processor.backfill.run import _Decoders, decode_object
from processor.backfill.sources import LogObject
from processor.backfill.stream import ChunkStream
from processor.cli.decode_cmds import EXIT_DAMAGED, register
from processor.core import native
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import HIT_METHODS, HIT_STATUSES, Hit
from tests.core.render import Req, realtime_record, s3_line, standard_header, standard_line

pytestmark = pytest.mark.unit

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
T0 = 1_764_000_000_000


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """opens"""

    register(root)
    return root


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENS_DATA_DIR", str(tmp_path / "data"))


def _parse(app: typer.Typer, *args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(app, ["parse", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout_bytes, result.stderr


def _without_native(mp: pytest.MonkeyPatch) -> None:
    """The compiled core off: decoders and the NDJSON writer in Python."""
    mp.setattr(native, "AVAILABLE", False)
    mp.setattr(native, "_writer", None)


def _is_hit(r: Req) -> bool:
    return (
        r.path == "/o.gif"
        and r.method in HIT_METHODS
        and r.status in HIT_STATUSES
        and bool(r.sid)
        and bool(r.cid)
    )


def _render(fmt: str, reqs: list[Req]) -> bytes:
    if fmt == "standard":
        return ("\n".join([standard_header(), *map(standard_line, reqs)]) + "\n").encode()
    if fmt == "s3":
        return "".join(s3_line(r) + "\n" for r in reqs).encode()
    return b"".join(realtime_record(r, DEFAULT_REALTIME_FIELDS) for r in reqs)


requests = st.lists(
    st.builds(
        lambda i, method, status, sid, cid, path: Req(
            f"rid{i:05d}x", T0 + 1000 * i, sid, cid, "k", method=method, status=status, path=path
        ),
        st.integers(0, 99_999),
        st.sampled_from(["GET", "HEAD", "POST", "PUT", "OPTIONS"]),
        st.sampled_from([200, 206, 304, 404, 403, 500, 301]),
        st.sampled_from(["s1", "", "ana@example.com"]),
        st.sampled_from(["c1", "", "spring"]),
        st.sampled_from(["/o.gif", "/o.gif", "/favicon.ico"]),
    ),
    max_size=40,
    unique_by=lambda r: r.request_id,
)


@SETTINGS
@given(fmt=st.sampled_from(["standard", "realtime", "s3"]), reqs=requests)
def test_native_and_python_parse_print_the_same_hits_and_only_hits(
    app: typer.Typer, tmp_path: Path, fmt: str, reqs: list[Req]
) -> None:
    assert native.AVAILABLE, "the compiled core is built by make install"  # else nothing compared
    path = tmp_path / f"in.{fmt}.log"
    path.write_bytes(_render(fmt, reqs))
    code, fast, err = _parse(app, "--format", fmt, str(path))
    with pytest.MonkeyPatch.context() as mp:
        _without_native(mp)
        slow_code, slow, slow_err = _parse(app, "--format", fmt, str(path))
    assert (code, fast, err) == (slow_code, slow, slow_err)
    assert code == 0
    printed = [orjson.loads(line) for line in fast.splitlines()]
    assert [p["request_id"] for p in printed] == [r.request_id for r in reqs if _is_hit(r)]
    for p in printed:
        assert p["method"] in HIT_METHODS and p["status"] in HIT_STATUSES
        assert p["sid"] and p["cid"]
    # Every pixel request that is not a hit is counted on stderr, by reason.
    counted = sum(int(n.replace(",", "")) for n in re.findall(r"not_a_hit: [^:]+: ([\d,]+)", err))
    pixel_not_hits = [r for r in reqs if r.path == "/o.gif" and not _is_hit(r)]
    assert counted == len(pixel_not_hits)
    for r in pixel_not_hits:
        if r.method not in HIT_METHODS:
            assert f"not_a_hit: method {r.method}:" in err
        elif r.status not in HIT_STATUSES:
            assert f"not_a_hit: status {r.status}:" in err


def test_all_prints_every_request_null_ids_off_the_pixel(app: typer.Typer, tmp_path: Path) -> None:
    reqs = [
        Req("hit1", T0, "s", "c", "k"),
        Req("nf404", T0 + 1, "s", "c", "k", status=404),
        Req("post", T0 + 2, "s", "c", "k", method="POST"),
        Req("icon", T0 + 3, "", "", "", path="/favicon.ico"),
    ]
    path = tmp_path / "E1.2025-11-24-16.x"
    path.write_bytes(_render("standard", reqs))
    code, out, err = _parse(app, "--format", "standard", str(path))
    assert code == 0
    assert [orjson.loads(x)["request_id"] for x in out.splitlines()] == ["hit1"]
    assert "not_a_hit: status 404: 1" in err and "not_a_hit: method POST: 1" in err
    assert "2 pixel requests not hits" in err
    code, out, _ = _parse(app, "--format", "standard", "--all", str(path))
    every = {d["request_id"]: d for d in map(orjson.loads, out.splitlines())}
    assert code == 0 and list(every) == ["hit1", "nf404", "post", "icon"]
    assert (every["icon"]["sid"], every["icon"]["cid"]) == (None, None)


def _lines(n: int) -> bytes:
    reqs = [Req(f"gz{i:05d}abcdefgh", T0 + 997 * i, f"s{i}", "c", "k") for i in range(n)]
    return _render("standard", reqs)


BODY = _lines(987)  # two header lines, a blank one, 987 requests
PACKED = gzip.compress(BODY, compresslevel=6, mtime=0)


def _backfill_ids(data: bytes) -> tuple[list[str], bool]:
    """What ``opens backfill`` loads from ``data`` (its reading thread and Python decoder)."""
    obj = LogObject("mem://x", "e", len(data), "standard", None, None)
    got: list[Hit] = []
    stream = ChunkStream(lambda: io.BytesIO(data))
    try:
        entry = decode_object(obj, stream, _Decoders(DecodeContext()), "direct", got.extend)
    finally:
        stream.close()
    return [h.request_id for h in got], entry.complete


@SETTINGS
@given(cut=st.integers(0, len(PACKED)))
def test_parse_salvages_a_cut_gzip_exactly_like_backfill(
    app: typer.Typer, tmp_path: Path, cut: int
) -> None:
    data = PACKED[:cut]
    path = tmp_path / "E1.2025-11-24-16.cut.gz"
    path.write_bytes(data)
    code, out, err = _parse(app, "--format", "standard", str(path))
    parsed = [orjson.loads(line)["request_id"] for line in out.splitlines()]
    loaded, complete = _backfill_ids(data)
    assert parsed == loaded
    everything = [f"gz{i:05d}abcdefgh" for i in range(987)]
    assert parsed == everything[: len(parsed)]  # a prefix: nothing invented, nothing reordered
    if cut == len(PACKED):
        assert (code, complete, len(parsed)) == (0, True, 987)
    elif cut > 2:
        assert code == EXIT_DAMAGED and not complete
        assert "truncated after line" in err and "damaged" in err


def test_parse_keeps_all_but_the_cut_line_of_the_last(app: typer.Typer, tmp_path: Path) -> None:
    """The issue's file: the gzip cut inside its last deflate block. ``GzipFile`` kept 0 lines."""
    data = PACKED[: len(PACKED) - 40]
    path = tmp_path / "E1.2025-11-24-16.cut.gz"
    path.write_bytes(data)
    code, out, err = _parse(app, "--format", "standard", str(path))
    parsed = out.splitlines()
    assert code == EXIT_DAMAGED
    assert 980 <= len(parsed) < 987
    assert len(parsed) == len(_backfill_ids(data)[0])
    # Two header lines and a blank one before the requests: the lines read in full.
    assert f"truncated after line {len(parsed) + 3:,}" in err
    code, help_out, _ = _parse(app, "--help")
    assert code == 0 and b"Exit status" in help_out and b"3" in help_out
