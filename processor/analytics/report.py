"""`opens report`: campaign_summary rows, filtered, as a table, JSON or CSV."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from processor.safe_text import json_safe, rich_text, write_csv

SUMMARY_COLUMNS: tuple[str, ...] = (
    "campaign",
    "category",
    "sends",
    "opens",
    "unique_opens",
    "human_unique_opens",
    "machine_opens",
    "invalid_hits",
    "open_rate",
    "human_open_rate",
    "first_open_at",
    "last_open_at",
)
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``2026-11-01``, ``2026-11-01T08:00:00Z`` or relative ``90m``, ``24h``, ``7d``."""
    now = now or datetime.now(UTC)
    if m := _RELATIVE.match(value.strip()):
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        msg = f"cannot read time {value!r}: use 2026-11-01, 2026-11-01T08:00:00Z, 24h or 7d"
        raise ValueError(msg) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Report:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def campaign_report(
    client: Any, database: str, *, campaigns: Sequence[str] = (), since: datetime | None = None
) -> Report:
    """Rows of ``campaign_summary`` as they are; ``since`` keeps campaigns with an open at or
    after that time. Values are bound parameters, never pasted into the SQL."""
    where = ["1"]
    params: dict[str, Any] = {"db": database}
    if campaigns:
        where.append("campaign IN {campaigns:Array(String)}")
        params["campaigns"] = list(campaigns)
    if since is not None:
        where.append("last_open_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since.astimezone(UTC).replace(tzinfo=None)
    # Only fixed column names and placeholders are joined here; values are bound.
    sql = (
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM {{db:Identifier}}.campaign_summary "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY campaign"
    )
    result = client.query(sql, parameters=params)
    return Report(SUMMARY_COLUMNS, [tuple(r) for r in result.result_rows])


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def to_json(report: Report) -> str:
    """A JSON array of objects; characters a terminal could act on are ``\\u`` escapes."""
    text = json.dumps(
        [{k: _plain(v) for k, v in row.items()} for row in report.as_dicts()], ensure_ascii=False
    )
    return json_safe(text)


def to_csv(report: Report) -> str:
    """CSV with a header; names made visible and defused as spreadsheet formulas."""
    return write_csv(report.columns, ([_plain(v) for v in row] for row in report.rows))


_LABELS = {
    "human_unique_opens": "human unique",
    "unique_opens": "unique",
    "open_rate": "open rate",
    "human_open_rate": "human rate",
    "machine_opens": "machine",
    "invalid_hits": "invalid",
    "first_open_at": "first open (UTC)",
    "last_open_at": "last open (UTC)",
}


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column.endswith("_rate"):
        return f"{value:.1%}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


def to_table(report: Report) -> Table:
    """The terminal table; every cell a ``Text``, so names are never read as console markup."""
    table = Table(
        title="Campaigns (unique = distinct subscribers; human = excluding machine opens)"
    )
    for col in report.columns:
        table.add_column(
            _LABELS.get(col, col), justify="left" if col in ("campaign", "category") else "right"
        )
    for row in report.rows:
        table.add_row(*(rich_text(_cell(v, c)) for v, c in zip(row, report.columns, strict=True)))
    return table
