"""``opens data update`` against a local HTTP server (never the internet), list ages, and the
classifier picking the downloaded lists up (issue #17)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from processor.cli.decode_cmds import register
from processor.core.classify import Classifier
from processor.core.egress import EgressRanges, apple_egress_path
from processor.lists import list_ages

pytestmark = pytest.mark.unit

FILES = {
    "/apple.csv": "172.224.226.0/27,GB,GB-EN,London,\n198.18.0.0/24,US,US-CA,Cupertino,\n",
    "/special.json": json.dumps(
        {
            "creationTime": "2026-12-01T10:00:00.000000",
            "prefixes": [{"ipv4Prefix": "203.0.113.0/26"}],
        }
    ),
    "/fetchers.json": json.dumps(
        {
            "creationTime": "2026-12-01T11:00:00.000000",
            "prefixes": [{"ipv6Prefix": "2001:db8::/48"}],
        }
    ),
    "/eop.json": json.dumps(
        [
            {"id": 9, "serviceArea": "Exchange", "ips": ["198.51.100.0/24", "2001:db8:f400::/48"]},
            {"id": 1, "serviceArea": "Exchange", "ips": ["52.96.0.0/14"]},  # not EOP
        ]
    ),
    "/gateways.txt": "# version: 7\nAS64500 examplegw\n192.0.2.128/25 examplegw\n",
}


REQUESTED: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        REQUESTED.append(self.path)
        body = FILES.get(self.path.split("?", 1)[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """opens"""

    register(root)
    return root


def test_update_fetches_every_list_and_the_classifier_uses_them(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("OPENS_DATA_DIR", str(data))
    monkeypatch.setenv("OPENS_GATEWAY_LIST_URL", f"{server}/gateways.txt")
    before = Classifier(data_dir=data)
    assert before.explain("Chrome/120", ip="198.51.100.7").machine is None
    args = ["data", "update", "--url", f"{server}/apple.csv"]
    for name, path in [
        ("google-special-crawlers", "special.json"),
        ("google-user-triggered-fetchers", "fetchers.json"),
        ("microsoft-eop", "eop.json"),
    ]:
        args += ["--source", f"{name}={server}/{path}"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((data / "lists.json").read_text())
    assert set(manifest) == {
        "apple-egress",
        "google-special-crawlers",
        "google-user-triggered-fetchers",
        "microsoft-eop",
        "gateways",
    }
    assert manifest["google-special-crawlers"]["version"] == "2026-12-01T10:00:00.000000"
    assert manifest["microsoft-eop"]["entries"] == 2  # sets 9/10 only, not set 1
    assert manifest["gateways"]["version"] == "7"
    # Microsoft's service asks for a client request id on every call.
    assert any(p.startswith("/eop.json?clientrequestid=") for p in REQUESTED)

    after = Classifier(lambda: EgressRanges.from_file(apple_egress_path(data)), data_dir=data)
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"
    assert after.explain(ua, ip="198.51.100.7").machine == "microsoft_scanner"
    assert after.explain(ua, ip="40.107.1.1").machine is None  # replaced by the download
    assert after.explain(ua, ip="52.96.1.1").machine is None
    assert after.explain(ua, ip="203.0.113.5").machine == "unknown_bot"
    assert after.explain(ua, ip="2001:db8::5").certainty == "probable"
    assert after.explain(ua, asn="64500").machine == "security_scanner"
    assert after.explain("Mozilla/5.0", ip="198.18.0.9").certainty == "certain"

    ages = list_ages(data, datetime.now(UTC))
    assert {kind for _, kind in ages.values()} == {"downloaded"}
    assert all(age < 600 for age, _ in ages.values())


def test_a_failed_list_keeps_the_snapshot(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("OPENS_DATA_DIR", str(data))
    args = ["data", "update", "--url", f"{server}/apple.csv"]
    for name in ("google-special-crawlers", "google-user-triggered-fetchers"):
        args += ["--source", f"{name}={server}/missing.json"]
    args += ["--source", f"microsoft-eop={server}/apple.csv"]  # not JSON
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0
    assert "microsoft-eop: not updated" in result.output
    assert "gateways: not updated: no source configured" in result.output
    assert not (data / "networks" / "microsoft-eop.txt").exists()
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"
    assert Classifier(data_dir=data).explain(ua, ip="40.107.1.1").machine == "microsoft_scanner"
    ages = list_ages(data, datetime(2027, 1, 1, tzinfo=UTC))
    assert ages["apple-egress"][1] == "downloaded"
    assert ages["microsoft-eop"] == (pytest.approx(29 * 86400.0), "snapshot")

    nothing = CliRunner().invoke(
        _app(),
        ["data", "update", "--url", f"{server}/nope", "--source", "gateways="]
        + [f"--source={n}={server}/nope" for n in ("google-special-crawlers", "microsoft-eop")]
        + [f"--source=google-user-triggered-fetchers={server}/nope"],
    )
    assert nothing.exit_code != 0


def test_list_age_is_a_metric_and_a_stack_status_table(tmp_path: Path) -> None:
    from prometheus_client import generate_latest
    from rich.console import Console

    from processor.cli.stack_cmds import _lists_table
    from processor.metrics import ListAge, Metrics

    metrics = Metrics()
    metrics.registry.register(ListAge(tmp_path))
    text = generate_latest(metrics.registry).decode()
    for name in ("apple-egress", "microsoft-eop", "gateways", "google-special-crawlers"):
        assert f'opens_list_age_seconds{{copy="snapshot",list="{name}"}}' in text
    console = Console(record=True, width=120)
    console.print(_lists_table(tmp_path))
    out = console.export_text()
    assert "microsoft-eop" in out and "snapshot" in out


@pytest.mark.parametrize("native", [True, False])
def test_a_reload_reaches_decoders_already_running(native: bool) -> None:
    """The worker's refresh: a decoder built before the lists changed uses them at once (the
    native core's own person shortcut reads the classifier's sets, updated in place)."""
    from processor.core.fields import DEFAULT_REALTIME_FIELDS
    from processor.core.hit import Hit
    from processor.core.native import realtime_decoder
    from processor.core.networks import NetworkIndex
    from processor.core.realtime import RealtimeDecoder
    from tests.corpus import CTX, Row, record

    classifier = Classifier(networks=NetworkIndex())
    make = realtime_decoder if native else RealtimeDecoder
    fields = DEFAULT_REALTIME_FIELDS  # no cs-headers: the native core decides by itself
    decoder = make(fields, CTX, classifier=classifier)
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"
    row = Row(ua, "40.107.22.51", "8075", "GET", "", "", "", "", "", "")
    first = decoder.decode(record(row, 1, fields))
    assert isinstance(first, Hit) and (first.machine, first.proxy) == (None, "microsoft")
    classifier.reload(None)  # the shipped snapshots, EOP included
    again = decoder.decode(record(row, 2, fields))
    assert isinstance(again, Hit) and again.machine == "microsoft_scanner"
