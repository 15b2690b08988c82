"""`opens demo`'s pipeline, smaller: every number equals the truth of the traffic sent.

Runs on the session's stack (Kafka + moto): infra apply, a real worker process, the edge, the
traffic generator over HTTP, a backfill child process, and the views read through the worker's
read-only endpoint.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.demo.check import compare
from processor.demo.run import DemoOptions, DemoRun, run_pipeline
from processor.devstack.stack import LocalStack
from processor.traffic.truth import SUMMARY_KEYS
from tests.conftest import free_port
from tests.test_dashboard import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_run(stack: LocalStack) -> Iterator[DemoRun]:
    settings = stack.settings.model_copy(
        update={"web_port": free_port(), "query_port": free_port()}
    )
    run = DemoRun(settings, DemoOptions(seed=7, subscribers=60, converge_timeout=120))
    try:
        yield run
    finally:
        run.close()
    assert not run.started_stack  # the session's stack was up: the demo leaves it alone


def test_demo_pipeline_equals_the_truth(demo_run: DemoRun, tmp_path: Path) -> None:
    outcome = run_pipeline(demo_run)
    exp = outcome.expected
    assert outcome.mismatches == [], demo_run.worker_log_tail()
    # The mix exercised what it claims to: drops reconciled by backfill, duplicates, machine
    # opens, forged signatures and requests that are not hits.
    assert outcome.stats["realtime_dropped"] > 0
    assert outcome.stats["realtime_duplicated"] > 0
    assert outcome.stats["standard_lines"] == exp.requests
    assert all(c["machine_opens"] > 0 and c["invalid_hits"] > 0 for c in exp.summary.values())
    assert 0 < exp.hits < exp.requests
    clients = {client for _, client in exp.by_client}
    assert {"Apple Mail", "Gmail (Google Image Proxy)", "Outlook"} <= clients
    assert len({country for _, country in exp.by_country}) >= 4
    # The check is sensitive: a truth that ignores the lost real-time records (they carry no
    # country in the standard log) does not match what the views report.
    blind = outcome.traffic.expected()
    assert [m.view for m in compare(blind, outcome.got)] != []
    assert {m.view for m in compare(blind, outcome.got)} == {"opens_by_country"}

    # The dashboard in Chromium shows the same numbers (and a screenshot is kept).
    url = f"{demo_run.settings.query_url}/dashboard"
    profile = "--user-data-dir=" + str(tmp_path / "profile")
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, profile, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for cid, exp in outcome.expected.summary.items():
        found = re.search(rf"<tr>\s*<td>{re.escape(cid)}</td>(.*?)</tr>", dom, re.S)
        assert found, cid
        cells = re.findall(r'<td class="n">([\d,]+)</td>', found[1])
        numbers = [int(n.replace(",", "")) for n in cells]
        assert numbers[:6] == [exp[k] for k in SUMMARY_KEYS], cid
    shot = tmp_path / "demo-dashboard.png"
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, profile, f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000
    keep = Path("bench-results")
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "demo-dashboard.png")
