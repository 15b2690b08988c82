"""`OPENS_LOG_FORMAT=json`: every worker log line is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from processor.logs import logging_config

pytestmark = pytest.mark.unit


def test_text_keeps_the_default() -> None:
    assert logging_config("text") is None


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    script = (
        "import logging, logging.config, sys\n"
        "from processor.logs import logging_config\n"
        "logging.config.dictConfig(logging_config('json', 'info'))\n"
        "log = logging.getLogger('processor.sources.kinesis')\n"
        "log.debug('hidden')\n"
        "log.warning('shard %s throttled', 'shardId-1', extra={'shard': 'shardId-1'})\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    log.exception('boom')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ
    )
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["level"] == "WARNING"
    assert first["logger"] == "processor.sources.kinesis"
    assert first["message"] == "shard shardId-1 throttled"
    assert first["shard"] == "shardId-1"
    assert {"time", "process"} <= set(first)
    assert "ZeroDivisionError" in second["exc_info"]
