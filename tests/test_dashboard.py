"""The dashboard in headless Chromium, over the read-only endpoint, showing real numbers."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.factories import generate, truth

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
    "--window-size=1400,1500",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed: run scripts/install-system-deps (CI does)"
    return path


def test_dashboard_renders_live_numbers(endpoint: str, tmp_path: Path) -> None:
    url = f"{endpoint}/dashboard"
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, *profile, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    exp = truth(generate(random.Random(8), 50, ["alpha", "beta"]))  # what the fixture wrote
    rows = re.findall(r"<tr>\s*<td>(alpha|beta)</td>(.*?)</tr>", dom, re.S)
    assert {name for name, _ in rows} == {"alpha", "beta"}
    for name, cells in rows:
        numbers = [
            int(n.replace(",", "")) for n in re.findall(r'<td class="n">([\d,]+)</td>', cells)
        ]
        e = exp[name]
        assert numbers[1:6] == [
            e["opens"],
            e["unique_opens"],
            e["human_unique_opens"],
            e["machine_opens"],
            e["invalid_hits"],
        ]
    assert "<polyline" in dom  # the timeline has a line
    assert 'aria-label="opens by weekday and hour"' in dom
    assert "error:" not in dom

    shot = tmp_path / "dashboard.png"
    subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, *profile, f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    keep: Any = Path("bench-results")
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "dashboard.png")


def _row(dom: str, name: str) -> list[int]:
    found = re.search(rf"<tr>\s*<td>{name}</td>(.*?)</tr>", dom, re.S)
    assert found, name
    return [int(n.replace(",", "")) for n in re.findall(r'<td class="n">([\d,]+)</td>', found[1])]


def test_toggle_counts_probable_machine_opens_as_human(
    endpoint: str, chdb_client: Any, ch_database: str, tmp_path: Path
) -> None:
    """gamma: one subscriber opened only through a gateway (a probable machine open), one was
    Apple MPP (certain): off, both are machine opens and nobody is a human opener; on, the
    probable one counts as a person."""
    from tests.factories import make_hit, write

    rows = [
        make_hit(1, cid="gamma", sid="p", machine="security_scanner", certainty="probable"),
        make_hit(2, cid="gamma", sid="c", machine="apple_mpp", certainty="certain"),
    ]
    write(chdb_client, ch_database, rows)
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]

    def dump(query: str) -> str:
        return subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, *profile, "--dump-dom", f"{endpoint}/dashboard{query}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    # columns: sends, opens, unique, human unique, machine, invalid
    assert _row(dump(""), "gamma")[1:5] == [2, 2, 0, 2]
    assert _row(dump("?probable=human"), "gamma")[1:5] == [2, 2, 1, 1]
