"""Event timestamps as epoch milliseconds without a ``datetime`` per line.

Log lines repeat the same date (and, in busy files, the same second) over and over, so each
distinct date is converted once and cached; the rest is integer arithmetic.
"""

from __future__ import annotations

import time
from datetime import date

from processor.core.context import DecodeContext

__all__ = [
    "IMPLAUSIBLE",
    "MAX_EPOCH_MS",
    "EventWindow",
    "S3Clock",
    "StandardClock",
    "epoch_ms_from_seconds_text",
]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 100_000
# 9999-12-31T23:59:59.999Z: the last instant ISO 8601 output (and datetime) can write; a later
# "time" is a corrupt or hostile line, not a request.
MAX_EPOCH_MS = 253_402_300_799_999
# The bad-line reason for a well-formed time outside the plausible window (DESIGN §2).
IMPLAUSIBLE = "implausible_timestamp"


class EventWindow:
    """The plausible event times of a context: ``[event_time_min_ms, now + max_ahead]``.

    A time outside it (0001-01-01, 2300-01-01, 9999-12-31 …) would pin first/last open and the
    freshness lag to nonsense, so decoders make such a line a bad line, never a hit. "Now" is
    read per call unless the context fixes it, so a long-running worker's bound moves on.
    """

    __slots__ = ("_ahead", "_now", "low")

    def __init__(self, ctx: DecodeContext) -> None:
        self.low = ctx.event_time_min_ms
        self._ahead = ctx.event_time_max_ahead_ms
        self._now = ctx.now_ms

    def high(self) -> int:
        now = self._now if self._now is not None else time.time_ns() // 1_000_000
        return now + self._ahead

    def bounds(self) -> tuple[int, int]:
        return self.low, self.high()

    def contains(self, ts_ms: int) -> bool:
        return self.low <= ts_ms <= self.high()


def epoch_ms_from_seconds_text(value: str) -> int | None:
    """``1607374321.541`` (real-time ``timestamp``) → ``1607374321541``; ``None`` if malformed.

    Integer arithmetic only: a float would round ``.541`` to ``.540999…`` and lose a millisecond.
    """
    whole, _, frac = value.partition(".")
    if not (whole.isascii() and whole.isdigit()) or len(whole) > 12:
        return None
    ms = int(whole) * 1000
    if frac:
        if not (frac.isascii() and frac.isdigit()):
            return None
        ms += int((frac + "00")[:3])
    return ms if ms <= MAX_EPOCH_MS else None


class StandardClock:
    """``date`` (``YYYY-MM-DD``) + ``time`` (``HH:MM:SS``, UTC) → epoch ms, cached per value."""

    __slots__ = ("dates", "times")

    def __init__(self) -> None:
        self.dates: dict[str, int] = {}
        self.times: dict[str, int] = {}

    def date_ms(self, value: str) -> int | None:
        ms = self.dates.get(value)
        if ms is None:
            if len(value) != 10 or not value.isascii():
                return None
            try:
                d = date.fromisoformat(value)
            except ValueError:
                return None
            if len(self.dates) > _CACHE_LIMIT:
                self.dates.clear()
            ms = self.dates[value] = (d.toordinal() - _EPOCH_DAY) * 86_400_000
        return ms

    def time_ms(self, value: str) -> int | None:
        ms = self.times.get(value)
        if ms is None:
            # HH:MM:SS, optionally with a fraction (standard logging v2 may add one).
            head, _, frac = value.partition(".")
            if len(head) != 8 or head[2] != ":" or head[5] != ":" or not head.isascii():
                return None
            hh, mm, ss = head[:2], head[3:5], head[6:]
            if not (hh.isdigit() and mm.isdigit() and ss.isdigit()):
                return None
            h, m, s = int(hh), int(mm), int(ss)
            if h > 23 or m > 59 or s > 60:
                return None
            ms = (h * 3600 + m * 60 + s) * 1000
            if frac:
                if not (frac.isascii() and frac.isdigit()):
                    return None
                ms += int((frac + "00")[:3])
            if len(self.times) > _CACHE_LIMIT:
                self.times.clear()
            self.times[value] = ms
        return ms

    def epoch_ms(self, date_text: str, time_text: str) -> int | None:
        d = self.date_ms(date_text)
        if d is None:
            return None
        t = self.time_ms(time_text)
        if t is None:
            return None
        return d + t


class S3Clock:
    """S3 access log time ``06/Feb/2019:00:00:38 +0000`` (without brackets) → epoch ms."""

    __slots__ = ("_days",)

    def __init__(self) -> None:
        self._days: dict[str, int] = {}

    def epoch_ms(self, value: str) -> int | None:
        # "DD/Mon/YYYY:HH:MM:SS +hhmm"
        if len(value) != 26 or value[11] != ":" or value[20] != " ":
            return None
        day_key = value[:11] + value[20:]
        base = self._days.get(day_key)
        if base is None:
            base = self._day_base(value[:11], value[21:])
            if base is None:
                return None
            if len(self._days) > _CACHE_LIMIT:
                self._days.clear()
            self._days[day_key] = base
        hh, mm, ss = value[12:14], value[15:17], value[18:20]
        if not (hh.isdigit() and mm.isdigit() and ss.isdigit()) or not value.isascii():
            return None
        if value[14] != ":" or value[17] != ":":
            return None
        return base + (int(hh) * 3600 + int(mm) * 60 + int(ss)) * 1000

    @staticmethod
    def _day_base(day: str, offset: str) -> int | None:
        try:
            dd, mon, yyyy = day.split("/")
            d = date(int(yyyy), _MONTHS[mon], int(dd))
        except (ValueError, KeyError):
            return None
        if len(offset) != 5 or offset[0] not in "+-" or not offset[1:].isdigit():
            return None
        minutes = int(offset[1:3]) * 60 + int(offset[3:5])
        if minutes >= 1440:
            return None  # not a UTC offset (datetime.timezone refuses it too)
        # Local midnight minus the offset, in integers: no datetime, so year 1 with a positive
        # offset (before datetime's range in UTC) is a time like any other, judged by the window.
        shift = minutes * 60_000 if offset[0] == "+" else -minutes * 60_000
        return (d.toordinal() - _EPOCH_DAY) * 86_400_000 - shift
