"""``opens parse``, ``opens pixel-url``, ``opens data update`` through the typer app.

Golden files: ``golden/<format>.log`` (lines written for these tests, modelled on the real
layouts) and the NDJSON + summary they must produce. ``UPDATE_GOLDEN=1`` rewrites the expected
files after a deliberate change; review the diff before committing it.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner

from processor.cli.decode_cmds import register
from processor.core.context import DecodeContext
from processor.core.pixel import verify
from processor.errors import OpensError

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_SECRET = "golden-secret"


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """opens"""

    register(root)
    return root


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("OPENS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENS_PIXEL_SECRETS", GOLDEN_SECRET)
    return tmp_path


def _run(app: typer.Typer, args: list[str], stdin: bytes | None = None) -> tuple[int, bytes, str]:
    runner = CliRunner()
    result = runner.invoke(app, args, input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [("standard", []), ("realtime", []), ("s3", []), ("standard", ["--all"])],
)
def test_golden(app: typer.Typer, env: Path, fmt: str, extra: list[str]) -> None:
    source = GOLDEN / f"{fmt}.log"
    code, out, err = _run(app, ["parse", "--format", fmt, *extra, str(source)])
    assert code == 0, err
    stem = f"{fmt}{'-all' if extra else ''}"
    summary = err.replace(str(source), source.name)
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / f"{stem}.ndjson").write_bytes(out)
        (GOLDEN / f"{stem}.summary").write_text(summary)
    assert out == (GOLDEN / f"{stem}.ndjson").read_bytes()
    assert summary == (GOLDEN / f"{stem}.summary").read_text()
    for line in out.splitlines():
        assert list(orjson.loads(line))[:2] == ["request_id", "ts"]


def test_golden_contents_say_what_the_issue_requires(app: typer.Typer, env: Path) -> None:
    _, out, err = _run(app, ["parse", "--format", "standard", str(GOLDEN / "standard.log")])
    hits = {h["request_id"][:4]: h for h in map(orjson.loads, out.splitlines())}
    assert hits["Gld1"]["signature"] == "valid"
    assert hits["Gld2"]["machine"] == "apple_mpp" and hits["Gld2"]["sid"] == "ana@example.com"
    assert (
        hits["Gld3"]["machine"] is None and hits["Gld3"]["client"] == "Gmail (Google Image Proxy)"
    )
    assert hits["Gld3"]["sid"] == "a&b c"
    assert (
        hits["Gld4"]["machine"] == "unknown_bot" and hits["Gld4"]["client_ip"] == "2600:1700:2328::"
    )
    # Yahoo's image cache fetches when the person opens: a human open through a proxy.
    assert hits["Gld5"]["signature"] == "invalid" and hits["Gld5"]["machine"] is None
    assert hits["Gld5"]["proxy"] == "yahoo" and hits["Gld3"]["proxy"] == "google"
    assert hits["Gld6"]["signature"] == "missing" and hits["Gld6"]["cid"] == "weekly"
    assert hits["Gld6"]["device"] == "mobile"
    assert "Gld7" not in hits  # /favicon.ico
    assert "field_count: 1" in err and "bad_timestamp: 1" in err


def test_gzip_stdin_and_unreadable_inputs(app: typer.Typer, env: Path) -> None:
    data = (GOLDEN / "standard.log").read_bytes()
    gz = env / "E2EXAMPLE.2025-11-24-16.abc.gz"
    gz.write_bytes(gzip.compress(data))
    code, from_gz, _ = _run(app, ["parse", "--format", "standard", str(gz)])
    assert code == 0
    code, from_stdin, _ = _run(
        app, ["parse", "--format", "standard", "-"], stdin=gzip.compress(data)
    )
    assert code == 0 and from_stdin == from_gz
    assert from_gz == (GOLDEN / "standard.ndjson").read_bytes()
    code, out, err = _run(app, ["parse", "--format", "standard", str(env / "nope.log"), str(gz)])
    assert code == 1
    assert out == from_gz  # the readable file is still decoded
    assert "cannot open" in err and "nope.log" in err


def test_realtime_fields_option(app: typer.Typer, env: Path) -> None:
    line = "1764000000.123\t192.0.2.1\tMozilla/5.0%20(X11)\tsid=s&cid=c&cat=\n"
    path = env / "rt.log"
    path.write_text(line)
    # Listed in any order: positions follow CloudFront's canonical order.
    args = [
        "parse",
        "--format",
        "realtime",
        "--fields",
        "cs-uri-query,cs-user-agent,c-ip,timestamp",
    ]
    # Without cs-method and sc-status no record can be a hit (REQUIRED_REALTIME_FIELDS): only
    # --all prints it; without, it is counted as not a hit.
    code, out, err = _run(app, [*args, str(path)])
    assert (code, out) == (0, b"") and "not_a_hit: method -: 1" in err
    code, out, _ = _run(app, [*args, "--all", str(path)])
    assert code == 0
    hit = orjson.loads(out)
    assert (hit["sid"], hit["cid"], hit["client_ip"], hit["user_agent"]) == (
        "s",
        "c",
        "192.0.2.0",
        "Mozilla/5.0 (X11)",
    )
    code, _, err = _run(
        app, ["parse", "--format", "realtime", "--fields", "timestamp,bogus", str(path)]
    )
    assert code == 2 and "bogus" in err


def test_pixel_url(app: typer.Typer, env: Path) -> None:
    code, out, _ = _run(
        app,
        [
            "pixel-url",
            "--sid",
            "sub 1",
            "--cid",
            "c1",
            "--cat",
            "k",
            "--base-url",
            "https://px.example.com",
        ],
    )
    assert code == 0
    url = out.decode().strip()
    q = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert url.startswith("https://px.example.com/o.gif?sid=sub%201&cid=c1&cat=k&sig=")
    assert verify((GOLDEN_SECRET.encode(),), "sub 1", "c1", "k", q["sig"][0]) == "valid"
    code, out, _ = _run(
        app,
        ["pixel-url", "--cid", "c1", "--base-url", "https://px.example.com", "--template", "erb"],
    )
    assert code == 0 and b'<img src="https://px.example.com/o.gif?sid=' in out
    code, _, err = _run(app, ["pixel-url", "--sid", "s", "--cid", "c"])
    assert code == 2 and "--base-url" in err


def test_pixel_url_without_secret_warns(
    app: typer.Typer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENS_PIXEL_SECRETS")
    code, out, err = _run(app, ["pixel-url", "--sid", "s", "--cid", "c", "--base-url", "http://x"])
    assert code == 0 and b"sig=" not in out and "unsigned" in err


def test_data_update_offline_fails_with_one_clear_line(
    app: typer.Typer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> httpx.Response:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(httpx, "get", offline)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "update"])
    assert isinstance(result.exception, OpensError)
    line = result.exception.one_line()
    assert "no list could be downloaded" in line and "\n" not in line
    assert "apple-egress: not updated: ConnectError" in result.stderr
    assert not (env / "data" / "apple-egress-ip-ranges.csv").exists()


def test_data_update_saves_the_list(
    app: typer.Typer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "172.224.226.0/27,GB,GB-EN,London,\n2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,\n"

    def fake_get(url: str, **kwargs: object) -> httpx.Response:
        return httpx.Response(200, text=body, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    code, out, _ = _run(app, ["data", "update"])
    assert code == 0 and b"apple-egress: saved 2 entries" in out
    assert (env / "data" / "apple-egress-ip-ranges.csv").read_text() == body


EXTREME_HEADER = (
    "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) "
    "cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) "
    "x-edge-result-type x-edge-request-id\n"
)
EXTREME_LINE = (
    "2026-11-27\t10:00:00\tFRA56-P1\t{}\t192.0.2.7\tGET\td.cloudfront.net\t/o.gif\t200\t-\t"
    "Mozilla/5.0\tsid=s1&cid=c1\t-\tHit\t{}\n"
)
EXTREME_FIELDS = "timestamp,c-ip,sc-status,cs-method,cs-uri-stem,x-edge-request-id"
EXTREME_RT = (
    "999999999999.123\t192.0.2.7\t200\tGET\t/o.gif?sid=a&cid=b\tlate==\n"
    "253402300799.999\t192.0.2.7\t200\tGET\t/o.gif?sid=a&cid=b\tlast==\n"
)


def test_values_past_what_any_output_can_hold_are_bad_or_zero_never_a_crash(
    app: typer.Typer, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timestamp past year 9999 (no ISO date, no ClickHouse DateTime64) is a bad line; a byte
    count past 64 bits (no UInt64, no JSON integer) reads as 0, like any unreadable count.
    The event-time window is widened to reach the writer's last instant; by default that
    instant is implausible (a bad line too)."""
    std = env / "big.log"
    std.write_text(
        EXTREME_HEADER
        + EXTREME_LINE.format("9" * 30, "big==")
        + EXTREME_LINE.format("18446744073709551615", "max==")
    )
    code, out, err = _run(app, ["parse", "--format", "standard", str(std)])
    assert code == 0, err
    assert [orjson.loads(x)["bytes"] for x in out.splitlines()] == [0, 18446744073709551615]

    rt = env / "rt.log"
    rt.write_text(EXTREME_RT)
    code, out, err = _run(
        app, ["parse", "--format", "realtime", "--fields", EXTREME_FIELDS, str(rt)]
    )
    assert (code, out) == (0, b"")
    assert "bad_timestamp: 1" in err
    assert "implausible_timestamp: 1" in err
    monkeypatch.setenv("OPENS_EVENT_TIME_MAX_AHEAD", str(10**13))
    code, out, err = _run(
        app, ["parse", "--format", "realtime", "--fields", EXTREME_FIELDS, str(rt)]
    )
    assert code == 0, err
    assert [orjson.loads(x)["ts"] for x in out.splitlines()] == ["9999-12-31T23:59:59.999Z"]
    assert "bad_timestamp: 1" in err


def test_the_python_reference_treats_extreme_values_the_same() -> None:
    from processor.core.realtime import RealtimeDecoder
    from processor.core.standard import StandardParser

    parser = StandardParser()
    out = [parser.parse_line(x) for x in EXTREME_HEADER.splitlines()]
    out = [
        parser.parse_line(EXTREME_LINE.format(n, "r==").rstrip("\n"))
        for n in ("9" * 30, "18446744073709551615")
    ]
    assert [getattr(h, "bytes", None) for h in out] == [0, 18446744073709551615]
    wide = DecodeContext(event_time_max_ahead_ms=10**16)
    dec = RealtimeDecoder(tuple(EXTREME_FIELDS.split(",")), wide)
    late, last = (dec.decode_line(x) for x in EXTREME_RT.splitlines())
    assert getattr(late, "reason", None) == "bad_timestamp"
    assert getattr(last, "ts_ms", None) == 253_402_300_799_999
