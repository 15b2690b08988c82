"""`opens sends load FILE.csv`: delivered sends per campaign, the open-rate denominator.

Replacement contract (DESIGN §4: "a file replaces all send rows of the campaigns it lists"):

- ``read_sends`` validates the whole file before anything is written: a bad row names its line,
  and two rows with the same key (campaign, category, sent_at in UTC at the column's whole-second
  precision) are an error naming both lines. So the rows of one load have distinct keys.
- ``load_sends`` writes the file as ONE insert in which every row carries the same explicit
  ``loaded_at``, chosen strictly greater than any ``loaded_at`` already stored for those
  campaigns (``max(now, stored max + 1 ms)``, so a clock that went backwards cannot make a
  reload lose). Campaigns the file does not list are not touched.
- The current sends of a campaign are its rows whose ``loaded_at`` equals that campaign's
  ``max(loaded_at)`` (``CURRENT_SENDS_SQL``; ``current_sends`` is the reference). Older loads'
  rows stay in the table until ReplacingMergeTree drops those sharing a key with a newer row;
  either way readers ignore them. A merge can only collapse rows of the same key, and within one
  load keys are distinct, so merges never change the current sends.

Loads of the same campaign must not run concurrently: two loaders that read the same stored
maximum in the same millisecond would write the same ``loaded_at`` and be read as one load.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from processor.errors import OpensError

REQUIRED = ("campaign", "category", "sent_at", "sends")
HEADER_HINT = "the header must be campaign,category,sent_at,sends"
ROW_HINT = "sent_at is ISO 8601, sends a whole number ≥ 0"

# What `sends.sent_at` (DateTime('UTC')) can hold: 1970-01-01 to 2106-02-07 06:28:15.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SENT_AT_MAX = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)
SENDS_MAX = 2**64 - 1  # UInt64
DUPLICATES_SHOWN = 10

# The rule every reader of `sends` uses: per campaign, only the rows of its latest load.
CURRENT_SENDS_SQL = """
SELECT campaign, sum(sends) AS sends
FROM {db:Identifier}.sends
WHERE (campaign, loaded_at) IN (
    SELECT campaign, max(loaded_at) FROM {db:Identifier}.sends GROUP BY campaign
)
GROUP BY campaign
"""

# Per listed campaign: its latest load time (epoch ms) and how many rows that load has.
_LATEST_LOADS_SQL = """
SELECT campaign, toUnixTimestamp64Milli(loaded_at) AS loaded_ms, count() AS rows
FROM {db:Identifier}.sends
WHERE campaign IN {campaigns:Array(String)}
  AND (campaign, loaded_at) IN (
    SELECT campaign, max(loaded_at) FROM {db:Identifier}.sends
    WHERE campaign IN {campaigns:Array(String)} GROUP BY campaign
  )
GROUP BY campaign, loaded_at
"""


@dataclass(frozen=True)
class SendRow:
    """One line of a per-campaign sends file.

    ``sent_at`` is tz-aware UTC, truncated to whole seconds (what the column stores);
    ``line`` is the file line the row ended on (1 is the header).
    """

    campaign: str
    category: str
    sent_at: datetime
    sends: int
    line: int = 0

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.campaign, self.category, self.sent_at)


@dataclass(frozen=True)
class DuplicateKey:
    """A key that appears on more than one line of a file."""

    campaign: str
    category: str
    sent_at: datetime
    lines: tuple[int, ...]

    def describe(self) -> str:
        stamp = self.sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        where = ", ".join(map(str, self.lines[:-1])) + f" and {self.lines[-1]}"
        return (
            f"duplicate key (campaign={self.campaign}, category={self.category}, "
            f"sent_at={stamp}) on lines {where}"
        )


class DuplicateSendKeys(OpensError):
    """A sends file lists the same (campaign, category, sent_at) more than once; nothing loaded."""

    def __init__(self, source: str, duplicates: list[DuplicateKey]) -> None:
        shown = "; ".join(d.describe() for d in duplicates[:DUPLICATES_SHOWN])
        more = len(duplicates) - DUPLICATES_SHOWN
        if more > 0:
            shown += f"; and {more} more duplicate key(s)"
        super().__init__(
            f"{source}: {shown}",
            hint="each (campaign, category, sent_at) appears once; nothing was loaded",
        )
        self.source = source
        self.duplicates = duplicates


@dataclass(frozen=True)
class LoadResult:
    """What one load did: rows written, campaigns replaced, and the rows they replaced."""

    rows: int
    campaigns: int
    replaced_rows: int
    loaded_at: datetime | None


def _parse_sent_at(text: str) -> datetime:
    sent_at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    sent_at = sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC)
    sent_at = sent_at.astimezone(UTC).replace(microsecond=0)
    if not EPOCH <= sent_at <= SENT_AT_MAX:
        msg = "sent_at out of range"
        raise ValueError(msg)
    return sent_at


def read_sends(path: Path) -> list[SendRow]:
    """Parse and validate the whole file first: a bad row names its line and loads nothing;
    a key on two lines names both and loads nothing (``DuplicateSendKeys``)."""
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
            raise OpensError(msg, hint=HEADER_HINT)
        rows = []
        for rec in reader:
            line = reader.line_num
            try:
                sent_at = _parse_sent_at(rec["sent_at"])
                sends = int(rec["sends"])
            except (ValueError, TypeError, AttributeError, OverflowError):
                sends = -1
            if not 0 <= sends <= SENDS_MAX or not rec.get("campaign"):
                msg = f"{path}:{line}: bad row {rec!r}"
                raise OpensError(msg, hint=ROW_HINT)
            rows.append(SendRow(rec["campaign"], rec["category"] or "", sent_at, sends, line))
    if duplicates := find_duplicates(rows):
        raise DuplicateSendKeys(str(path), duplicates)
    return rows


def find_duplicates(rows: list[SendRow]) -> list[DuplicateKey]:
    """Keys on more than one line, in the order their second line appears."""
    lines: dict[tuple[str, str, datetime], list[int]] = defaultdict(list)
    for r in rows:
        lines[r.key].append(r.line)
    dups = [DuplicateKey(*k, lines=tuple(ls)) for k, ls in lines.items() if len(ls) > 1]
    return sorted(dups, key=lambda d: d.lines[1])


def _ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def next_loaded_at(now: datetime, stored_max_ms: int | None) -> datetime:
    """The version of a new load: ``now`` at millisecond precision, or 1 ms past the newest
    load already stored for its campaigns if that is later (a clock that went backwards)."""
    now_ms = (now.astimezone(UTC) - EPOCH) // timedelta(milliseconds=1)
    if stored_max_ms is not None:
        now_ms = max(now_ms, stored_max_ms + 1)
    return _ms_to_datetime(now_ms)


def load_sends(
    client: Any, database: str, rows: list[SendRow], *, now: datetime | None = None
) -> LoadResult:
    """Replace all send rows of every campaign in ``rows`` with ``rows``, in one insert.

    ``now`` is for tests that simulate a clock; by default the current time.
    """
    if not rows:
        return LoadResult(rows=0, campaigns=0, replaced_rows=0, loaded_at=None)
    if dups := find_duplicates(rows):  # the invariant that keeps merges from changing a load
        source = "rows to load"
        raise DuplicateSendKeys(source, dups)
    campaigns = sorted({r.campaign for r in rows})
    latest = client.query(
        _LATEST_LOADS_SQL, parameters={"db": database, "campaigns": campaigns}
    ).result_rows
    stored_max = max((int(ms) for _, ms, _ in latest), default=None)
    loaded_at = next_loaded_at(now or datetime.now(UTC), stored_max)
    client.insert(
        "sends",
        [[r.campaign, r.category, r.sent_at, r.sends, loaded_at] for r in rows],
        column_names=["campaign", "category", "sent_at", "sends", "loaded_at"],
        database=database,
    )
    return LoadResult(
        rows=len(rows),
        campaigns=len(campaigns),
        replaced_rows=sum(int(n) for _, _, n in latest),
        loaded_at=loaded_at,
    )


def current_sends(client: Any, database: str) -> dict[str, int]:
    """Total current sends per campaign: the reference of the rule readers use
    (``CURRENT_SENDS_SQL``: only the rows of each campaign's latest load)."""
    rows = client.query(CURRENT_SENDS_SQL, parameters={"db": database}).result_rows
    return {str(campaign): int(total) for campaign, total in rows}
