"""Hostile names (issue #14, finding 5): every report format prints them, never obeys them."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from processor.analytics.report import SUMMARY_COLUMNS, Report, to_csv, to_json, to_table
from processor.core.logparse import ParseSummary
from processor.safe_text import csv_cell, error_line, is_unsafe_char, json_safe, visible

HOSTILE_PIECES = [
    "[/]",
    "[bold red]x[/bold red]",
    "[link=file:///etc/passwd]x[/link]",
    ":smile:",
    "\x1b[31m",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "\x1b]0;title\x1b\\",
    "\x9b31m",
    "\x07",
    "\x08\x08",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "\u202e",
    "\u2066",
    "\u200b",
    "\u2028",
    "\ufeff",
    "\ud800",
    '"',
    ",",
    "'",
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "\uff1d1",
    "%1",
]
hostile = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=6)), min_size=0, max_size=6
).map("".join)

FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _report(names: list[tuple[str, str]]) -> Report:
    at = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    rows = [(c, k, 10, 5, 4, 3, 1, 2, 0.4, 0.3, at, at) for c, k in names]
    return Report(SUMMARY_COLUMNS, rows)


def _no_raw_control(text: str, allowed: str = "") -> None:
    bad = [ch for ch in text if is_unsafe_char(ch) and ch not in allowed]
    assert not bad, (bad, text)


def _render(table: object) -> str:
    buf = io.StringIO()
    Console(file=buf, width=400, color_system=None, force_terminal=False).print(table)
    return buf.getvalue()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(hostile, hostile), min_size=1, max_size=4))
def test_every_report_format_survives_hostile_names(names: list[tuple[str, str]]) -> None:
    rep = _report(names)

    text = _render(to_table(rep))
    _no_raw_control(text, allowed="\n")
    for campaign, _ in names:
        # Markup is shown as text: the visible form of the name is in the table (maybe wrapped
        # only when very long, which these names are not).
        if campaign and "\n" not in visible(campaign) and len(visible(campaign)) < 20:
            assert visible(campaign) in text

    data = to_json(rep)
    _no_raw_control(data)
    assert [(r["campaign"], r["category"]) for r in json.loads(data)] == names

    out = to_csv(rep)
    _no_raw_control(out, allowed="\n")
    parsed = list(csv.reader(io.StringIO(out)))
    assert len(parsed) == len(names) + 1
    assert all(len(row) == len(SUMMARY_COLUMNS) for row in parsed)
    for row in parsed[1:]:
        assert not any(cell.startswith(FORMULA) for cell in row), row


@given(hostile)
def test_visible_escapes_every_unsafe_character(value: str) -> None:
    shown = visible(value)
    _no_raw_control(shown)
    if not any(is_unsafe_char(ch) for ch in value):
        assert shown == value


@given(hostile)
def test_csv_cell_defuses_formulas(value: str) -> None:
    cell = csv_cell(value)
    assert isinstance(cell, str)
    assert not cell.startswith(FORMULA)
    assert cell in (visible(value), "'" + visible(value))
    assert (cell != visible(value)) == visible(value).startswith(FORMULA)


@given(st.text())
def test_json_safe_keeps_json_and_data(value: str) -> None:
    text = json_safe(json.dumps({"k": value}, ensure_ascii=False))
    _no_raw_control(text)
    assert json.loads(text) == {"k": value}


def test_known_examples() -> None:
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("\u202egnp.exe") == "\\u202egnp.exe"
    assert visible("\x9b") == "\\x9b"
    assert visible("été 👍") == "été 👍"
    assert csv_cell("=cmd|x") == "'=cmd|x"
    assert csv_cell("@SUM(1)") == "'@SUM(1)"
    assert csv_cell(-3) == -3  # numbers are ours, not names
    rows = list(csv.reader(io.StringIO(to_csv(_report([("a\rb", "+1+1")])))))
    assert rows[1][:2] == ["a\\x0db", "'+1+1"]
    assert unicodedata.category("\u200d") == "Cf"
    assert not is_unsafe_char("\u200d")  # joins emoji; cannot reorder or hide text


def test_markup_campaign_does_not_crash_the_table() -> None:
    text = _render(to_table(_report([("[/]", "[bold]x")])))
    assert "[/]" in text
    assert "[bold]x" in text


@given(hostile)
def test_error_line_and_parse_summary_print_names_as_text(name: str) -> None:
    buf = io.StringIO()
    Console(file=buf, width=400, color_system=None).print(error_line(f"cannot open {name}"))
    _no_raw_control(buf.getvalue(), allowed="\n")
    summary = ParseSummary()
    summary.fail("bad_timestamp", f"{name}:1")
    summary.unreadable.append(name)
    _no_raw_control(summary.render(), allowed="\n")


class _FakeClient:
    """Stands in for ClickHouse: ``campaign_summary`` rows with the given names."""

    def __init__(self, rows: list[tuple[object, ...]]) -> None:
        self.rows = rows

    def query(self, sql: str, parameters: object = None) -> object:
        return type("Result", (), {"result_rows": self.rows})()

    def close(self) -> None:
        pass


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(hostile, hostile), min_size=1, max_size=3))
def test_opens_report_command_prints_hostile_names_in_every_format(
    names: list[tuple[str, str]],
) -> None:
    import pytest
    from typer.testing import CliRunner

    from processor.analytics import access
    from processor.cli.main import app

    rows = _report(names).rows
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(access, "reader_client", lambda _s: (_FakeClient(rows), "opens"))
        runner = CliRunner()
        for fmt in ("table", "csv", "json"):
            result = runner.invoke(app, ["report", "--format", fmt])
            assert result.exit_code == 0, (fmt, result.output, result.exception)
            _no_raw_control(result.stdout, allowed="\n")
            if fmt == "json":
                assert [(r["campaign"], r["category"]) for r in json.loads(result.stdout)] == names
            if fmt == "csv":
                parsed = list(csv.reader(io.StringIO(result.stdout)))
                assert len(parsed) == len(names) + 1
                assert not any(c.startswith(FORMULA) for row in parsed[1:] for c in row)
