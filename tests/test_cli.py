"""The `opens` entry point as a user meets it: help everywhere, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


def opens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("stack",),
        ("stack", "up"),
        ("stack", "status"),
        ("stack", "down"),
        ("stack", "env"),
        ("worker",),
        ("schema", "apply"),
        ("demo",),
        ("report",),
        ("forget",),
        ("unforget",),
        ("dashboard",),
        ("sends", "load"),
        ("parse",),
        ("pixel-url",),
        ("data", "update"),
        ("reclassify",),
        ("infra",),
        ("infra", "plan"),
        ("infra", "apply"),
        ("infra", "destroy"),
        ("infra", "status"),
        ("backfill",),
        ("edge",),
    ],
)
def test_every_command_has_help(args: tuple[str, ...]) -> None:
    out = opens(*args, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def test_bad_setting_is_one_line_without_traceback() -> None:
    out = opens("stack", "env", env={"OPENS_IP_PRIVACY": "sometimes"})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "OPENS_IP_PRIVACY" in lines[0]


def test_stack_env_prints_exports(tmp_path: object) -> None:
    out = opens("stack", "env", env={"OPENS_STACK_KAFKA_PORT": "29999"})
    assert out.returncode == 0, out.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.stdout.strip().splitlines()
    )
    assert exports["OPENS_KAFKA_BROKERS"] == "127.0.0.1:29999"
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert {"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= exports.keys()


def test_unknown_command_fails_cleanly() -> None:
    out = opens("no-such-command")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr


def test_reclassify_on_an_empty_database_says_so_in_json(tmp_path: Path) -> None:
    out = opens("reclassify", "--since", "7d", env={"OPENS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "examined": 0, "changed": 0, "subscribers": 0, "days": [], "moves": [],
    }  # fmt: skip
    bad = opens("reclassify", "--since", "yesterday-ish", env={"OPENS_DATA_DIR": str(tmp_path)})
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
