"""`opens sends load FILE.csv`: delivered sends per campaign, the open-rate denominator."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processor.errors import OpensError

REQUIRED = ("campaign", "category", "sent_at", "sends")


@dataclass(frozen=True)
class SendRow:
    campaign: str
    category: str
    sent_at: datetime
    sends: int


def read_sends(path: Path) -> list[SendRow]:
    """Parse and validate the whole file first: a bad row names its line and loads nothing."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}"
        raise OpensError(msg) from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            msg = f"{path}: missing column(s) {', '.join(missing)}"
            raise OpensError(msg, hint="the header must be campaign,category,sent_at,sends")
        rows = []
        for line, rec in enumerate(reader, start=2):
            try:
                sent_at = datetime.fromisoformat(rec["sent_at"].strip().replace("Z", "+00:00"))
                sends = int(rec["sends"])
            except (ValueError, TypeError, AttributeError):
                sends = -1
            if sends < 0 or not rec.get("campaign"):
                msg = f"{path}:{line}: bad row {rec!r}"
                raise OpensError(msg, hint="sent_at is ISO 8601, sends a whole number ≥ 0")
            sent_at = sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC)
            rows.append(SendRow(rec["campaign"], rec["category"] or "", sent_at, sends))
    return rows


def load_sends(client: Any, database: str, rows: list[SendRow]) -> int:
    """Insert rows; ReplacingMergeTree keyed by (campaign, category, sent_at) makes a reload
    replace the earlier values instead of adding to them."""
    if not rows:
        return 0
    client.insert(
        "sends",
        [
            [r.campaign, r.category, r.sent_at.astimezone(UTC).replace(tzinfo=None), r.sends]
            for r in rows
        ],
        column_names=["campaign", "category", "sent_at", "sends"],
        database=database,
    )
    return len(rows)
