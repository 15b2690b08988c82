"""A real browser opens a real email: Chromium loads the pixel from the local edge.

The email is rendered with jinja2 from the snippet `opens pixel-url --template jinja` prints,
with real values and the signing filter the snippet documents. Chromium (headless) fetches the
pixel; the open travels edge → Kinesis → worker → ClickHouse, the standard log is backfilled
on top, and the open is counted exactly once, with Chromium's own user agent and the client
that agent is: ``HeadlessChrome``, a machine open (headless browsers are ``unknown_bot``). The
dashboard, rendered and screenshotted in Chromium, shows it.
"""

from __future__ import annotations

import base64
import hmac
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from processor.demo.run import DEMO_SECRET, DemoOptions, DemoRun
from processor.devstack.stack import LocalStack
from tests.conftest import free_port
from tests.test_dashboard import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.integration

CAMPAIGN, CATEGORY, SUBSCRIBER = "chromium-launch", "news", "reader-42@example.org"


def opens_sig(sid: str, cid: str, cat: str = "") -> str:
    """The filter exactly as the snippet's comment tells a mailer to register it."""
    key = DEMO_SECRET.split(",")[0].strip().encode()
    msg = f"v1\n{sid}\n{cid}\n{cat}".encode()
    return base64.urlsafe_b64encode(hmac.digest(key, msg, "sha256")[:16]).rstrip(b"=").decode()


def render_email(edge_url: str, env: dict[str, str]) -> str:
    snippet = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor",
            "pixel-url",
            "--template",
            "jinja",
            "--cid",
            CAMPAIGN,
            "--cat",
            CATEGORY,
            "--base-url",
            edge_url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    ).stdout
    jenv = jinja2.Environment(autoescape=True)
    jenv.filters["opens_sig"] = opens_sig
    body = (
        "<!doctype html><html><body><h1>Hello {{ subscriber.name }}</h1>"
        "<p>Our launch is live.</p>" + snippet + "</body></html>"
    )
    return jenv.from_string(body).render(subscriber={"id": SUBSCRIBER, "name": "Ada"})


def summary_row(run: DemoRun) -> dict[str, Any] | None:
    client, db = run.reader()
    try:
        result = client.query(
            "SELECT * FROM {db:Identifier}.campaign_summary WHERE campaign = {c:String}",
            parameters={"db": db, "c": CAMPAIGN},
        )
        rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    finally:
        client.close()
    return rows[0] if rows else None


def wait_for_open(run: DemoRun, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row = summary_row(run)
    while (row is None or row["opens"] < 1) and time.monotonic() < deadline:
        time.sleep(0.5)
        row = summary_row(run)
    assert row is not None, "the campaign never appeared in campaign_summary"
    return row


@pytest.fixture
def live(stack: LocalStack) -> Iterator[DemoRun]:
    settings = stack.settings.model_copy(
        update={"web_port": free_port(), "query_port": free_port()}
    )
    run = DemoRun(settings, DemoOptions(drop_realtime=0.0, duplicate_realtime=0.0))
    try:
        run.stack_up()
        run.schema_and_sends(
            f"campaign,category,sent_at,sends\n{CAMPAIGN},{CATEGORY},2026-11-27T08:00:00Z,1\n"
        )
        run.infra_apply()
        run.start_worker()
        yield run
    finally:
        run.close()


def test_chromium_opens_the_email_once(live: DemoRun, tmp_path: Path) -> None:
    edge_url = live.start_edge()
    html = render_email(edge_url, live.env())
    assert opens_sig(SUBSCRIBER, CAMPAIGN, CATEGORY) in html
    assert "sid=reader-42%40example.org" in html  # the urlencode filter at work
    email = tmp_path / "email.html"
    email.write_text(html)
    profile = "--user-data-dir=" + str(tmp_path / "profile")
    agent = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, profile, "--dump-dom", email.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Hello Ada" in agent.stdout
    stats, _ = live.stop_edge()  # flushes the standard log
    assert stats["requests"] == 1  # Chromium asked for the pixel once (no favicon for file://)

    row = wait_for_open(live)
    live.backfill()  # the standard log holds the same request: still one open
    row = wait_for_open(live)
    assert (row["opens"], row["unique_opens"], row["invalid_hits"], row["sends"]) == (1, 1, 0, 1)
    assert (row["machine_opens"], row["human_unique_opens"]) == (1, 0)  # headless: unknown_bot

    client, db = live.reader()
    try:
        hits = client.query(
            "SELECT user_agent, client, machine, signature, sid FROM {db:Identifier}.hits FINAL "
            "WHERE cid = {c:String}",
            parameters={"db": db, "c": CAMPAIGN},
        ).result_rows
        by_client = client.query(
            "SELECT client, opens FROM {db:Identifier}.opens_by_client WHERE campaign = {c:String}",
            parameters={"db": db, "c": CAMPAIGN},
        ).result_rows
    finally:
        client.close()
    assert len(hits) == 1
    user_agent, family, machine, signature, sid = hits[0]
    assert re.search(r"HeadlessChrome/\d+", user_agent)
    assert (family, machine, signature, sid) == (
        "HeadlessChrome",
        "unknown_bot",
        "valid",
        SUBSCRIBER,
    )
    assert by_client == [("HeadlessChrome", 1)]

    # The dashboard, in the same browser: the campaign's row shows the open.
    url = f"{live.settings.query_url}/dashboard"
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, profile, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(rf"<tr>\s*<td>{CAMPAIGN}</td>(.*?)</tr>", dom, re.S)
    assert found, "the campaign is not on the dashboard"
    numbers = [
        int(n.replace(",", "")) for n in re.findall(r'<td class="n">([\d,]+)</td>', found[1])
    ]
    assert numbers[:6] == [1, 1, 1, 0, 1, 0]  # sends, opens, unique, human unique, machine, invalid
    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, profile, f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    keep = Path("bench-results")
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "chromium-open-dashboard.png")
