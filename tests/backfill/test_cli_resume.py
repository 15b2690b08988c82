"""``opens backfill`` as a process: JSON progress, exit status, and kill -9 mid-run then resume."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.backfill.logs import SECRET, cloudfront_files, make_requests, truth_hits
from tests.conftest import query_chdb_in_subprocess
from tests.core.render import standard_header, standard_line
from tests.factories import truth

pytestmark = pytest.mark.integration

SUMMARY_SQL = (
    "SELECT campaign, opens, unique_opens, human_unique_opens, machine_opens, invalid_hits,"
    " toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(last_open_at)"
    " FROM {db}.campaign_summary ORDER BY campaign"
)
KEYS = (
    "opens",
    "unique_opens",
    "human_unique_opens",
    "machine_opens",
    "invalid_hits",
    "first_open_at",
    "last_open_at",
)


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OPENS_DATA_DIR": str(tmp / "data"),
        "OPENS_CLICKHOUSE_URL": f"chdb://{tmp / 'ch'}",
        "OPENS_PIXEL_SECRETS": SECRET.decode(),
    }


def _backfill(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "processor", "backfill", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp),
    )


def _summary(tmp: Path) -> dict[str, dict[str, Any]]:
    rows = query_chdb_in_subprocess(tmp / "ch", SUMMARY_SQL.format(db="opens"))
    return {r[0]: dict(zip(KEYS, r[1:], strict=True)) for r in rows}


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_cli_progress_json_exit_status_and_rerun(tmp_path: Path) -> None:
    reqs = make_requests(random.Random(21), 1000)
    logs = tmp_path / "logs"
    cloudfront_files(reqs, bad_every=100).write_to(logs)
    proc = _backfill(tmp_path, str(logs), "--direct")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # finished, but some lines were skipped
    events = _events(err)
    assert events[0]["event"] == "start"
    final = events[-1]
    assert final["event"] == "summary"
    assert final["failures"] == {"field_count": final["bad_lines"]} and final["bad_lines"] > 0
    assert sum(1 for e in events if e["event"] == "object") == final["objects_processed"] == 8
    assert _summary(tmp_path) == truth(truth_hits(reqs))

    proc = _backfill(tmp_path, str(logs), "--direct")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # nothing left to do, nothing skipped
    assert _events(err)[-1]["objects_already_done"] == 8
    assert _summary(tmp_path) == truth(truth_hits(reqs))

    bad = _backfill(tmp_path, str(logs), "--since", "yesterday-ish")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 2 and "Traceback" not in err and "--since" in err
    missing = _backfill(tmp_path, str(tmp_path / "nope"), "--direct")
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and "Traceback" not in err and "no such file" in err


def test_kill_mid_run_then_resume_gives_the_exact_numbers(tmp_path: Path) -> None:
    rnd = random.Random(22)
    reqs = make_requests(rnd, 3000)
    logs = tmp_path / "logs"
    cloudfront_files(reqs).write_to(logs)
    # The last object is a named pipe the test feeds: the run decodes the finished files, then
    # blocks in the middle of this one with part of its hits delivered — and is killed there.
    # 3/4 of 40,000 lines hold more than one 20,000-hit batch; batches handed to the writer
    # before it settles to record the finished files are inserted with theirs, so the kill
    # usually finds part of this object's hits already inserted (exact numbers either way).
    tail = make_requests(rnd, 40_000, hours=1, start_ms=reqs[0].req.ts_ms + 30 * 3_600_000)
    body = (standard_header() + "".join(standard_line(r.req) + "\n" for r in tail)).encode()
    fifo = logs / "zz" / "E2EXAMPLE7ABC.2025-11-26-00.pipe"
    fifo.parent.mkdir()
    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with fifo.open("wb") as pipe:
                pipe.write(body[: len(body) * 3 // 4])
                pipe.flush()
                killed.wait(120)
        except BrokenPipeError:
            pass

    killed = threading.Event()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    proc = _backfill(tmp_path, str(logs), "--direct")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True
    ).start()
    recorded = 0
    while recorded < 8:  # every regular file is in the manifest
        line = lines.get(timeout=120)
        if line.startswith("{") and json.loads(line)["event"] == "object":
            recorded += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed.set()
    feeder.join(10)
    assert proc.returncode == -signal.SIGKILL

    # The crash left the pipe's object unfinished; it is now a complete regular file.
    fifo.unlink()
    fifo.write_bytes(body)
    proc = _backfill(tmp_path, str(logs), "--direct")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = _events(err)[-1]
    assert (final["objects_already_done"], final["objects_processed"]) == (8, 1)
    assert _summary(tmp_path) == truth(truth_hits(reqs + tail))
