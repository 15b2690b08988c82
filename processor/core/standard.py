"""Parse CloudFront standard logs: legacy W3C files and standard logging v2 (W3C and JSON).

The ``#Fields:`` header drives the column positions, so every historical layout works (12, 15,
18/19, 23, 24, 26 and today's 33 fields, plus whatever AWS appends), and a stream may hold several
header blocks (concatenated files). A line before any header is read as the first N fields of
today's layout, since CloudFront only ever appended fields. Values are TAB-separated; a line with
no TAB at all is split on runs of spaces (documentation copies and some v2 outputs), which is safe
because CloudFront encodes spaces inside values. Lines too old to carry ``x-edge-request-id`` get
a deterministic id from their content. The user agent is decoded once, or twice when it was
double-encoded (``%2520``, 2013-2020 files). The query carries CloudFront's extra ``%25``
escaping: decoded once, then parsed as a form query.

Standard logging v2 JSON lines (``{"date": "...", "cs(User-Agent)": "...", ...}``, all values
strings) use the same field names and rules; ``timestamp(ms)`` wins over ``date``+``time``
when present because it keeps the milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

import orjson

from processor.core.builder import HitBuilder, content_request_id
from processor.core.classify import Classifier
from processor.core.clock import IMPLAUSIBLE, MAX_EPOCH_MS, EventWindow, StandardClock
from processor.core.context import DecodeContext
from processor.core.fields import STANDARD_FIELDS
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.text import count_value, decode_ua_auto

__all__ = ["StandardLayout", "StandardParser"]

Outcome = Hit | Failure | None

_USED = (
    "date",
    "time",
    "timestamp(ms)",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "x-edge-request-id",
    "time-taken",
    "c-country",
    "asn",
)


class StandardLayout:
    """Column positions of the fields the parser reads, from a ``#Fields:`` list."""

    __slots__ = (
        "asn",
        "country",
        "date",
        "edge",
        "fields",
        "get",
        "ip",
        "maxsplit",
        "method",
        "min_fields",
        "query",
        "referer",
        "rid",
        "sc_bytes",
        "status",
        "stem",
        "taken",
        "time",
        "ts_ms",
        "ua",
        "width",
    )

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = tuple(fields)
        pos: dict[str, int] = {}
        for i, name in enumerate(self.fields):
            pos.setdefault(name, i)
        absent = -1
        self.date = pos.get("date", absent)
        self.time = pos.get("time", absent)
        self.ts_ms = pos.get("timestamp(ms)", absent)
        self.edge = pos.get("x-edge-location", absent)
        self.sc_bytes = pos.get("sc-bytes", absent)
        self.ip = pos.get("c-ip", absent)
        self.method = pos.get("cs-method", absent)
        self.stem = pos.get("cs-uri-stem", absent)
        self.status = pos.get("sc-status", absent)
        self.referer = pos.get("cs(Referer)", absent)
        self.ua = pos.get("cs(User-Agent)", absent)
        self.query = pos.get("cs-uri-query", absent)
        self.rid = pos.get("x-edge-request-id", absent)
        self.taken = pos.get("time-taken", absent)
        self.country = pos.get("c-country", absent)
        self.asn = pos.get("asn", absent)
        used = [pos[name] for name in _USED if name in pos]
        required = [i for i in (self.method, self.stem, self.status) if i >= 0]
        required += [self.ts_ms] if self.ts_ms >= 0 else [self.date, self.time]
        # Highest column read + 1: the line is split that far and no further.
        self.width = max(used, default=-1) + 1
        self.maxsplit = self.width
        self.min_fields = max(required) + 1
        # One C call fetches every column read; an absent column (-1) reads the "-" that the
        # parser appends after splitting.
        self.get: Callable[[list[str]], tuple[str, ...]] = itemgetter(
            *(pos.get(name, -1) for name in _USED)
        )


_DEFAULT_LAYOUT = StandardLayout(STANDARD_FIELDS)


class StandardParser:
    """A stateful line parser for one stream (the last ``#Fields:`` header applies).

    ``parse_line`` returns a ``Hit``, ``None`` (a header, a comment, a blank line or — with
    ``ctx.pixel_only`` — a request for another path) or a ``Failure``; it never raises.
    ``headers``/``blank`` count the non-request lines seen.
    """

    def __init__(self, ctx: DecodeContext | None = None, *, classifier: Classifier | None = None):
        self.ctx = ctx or DecodeContext()
        self._builder = HitBuilder(self.ctx, "standard", decode_ua_auto, classifier=classifier)
        self._clock = StandardClock()
        self._window = EventWindow(self.ctx)
        # The clock's caches, read directly on the hot path (filled by the clock on a miss).
        self._dates = self._clock.dates
        self._times = self._clock.times
        self._layouts: dict[str, StandardLayout] = {}
        self.layout = _DEFAULT_LAYOUT
        self.headers = 0
        self.blank = 0

    def reset(self) -> None:
        """Forget the current header (call between independent files)."""
        self.layout = _DEFAULT_LAYOUT

    def parse_lines(self, lines: Iterable[str]) -> Iterator[Outcome]:
        parse = self.parse_line
        for line in lines:
            yield parse(line)

    def parse_many(self, lines: list[str]) -> list[Outcome]:
        """The outcomes of many lines, in order (the batch form of ``parse_line``)."""
        parse = self.parse_line
        return [parse(line) for line in lines]

    def parse_line(self, line: str) -> Outcome:
        try:
            return self._parse(line)
        except Exception as exc:
            return Failure(
                "unexpected",
                line.encode("utf-8", "surrogateescape"),
                detail=f"{type(exc).__name__}: {exc}",
            )

    # -- internals -------------------------------------------------------------------------

    def _header(self, line: str) -> None:
        self.headers += 1
        if line.startswith("#Fields:"):
            spec = line[8:].strip()
            layout = self._layouts.get(spec)
            if layout is None:
                layout = self._layouts[spec] = StandardLayout(spec.split())
            self.layout = layout

    def _parse(self, line: str) -> Outcome:
        if line[-1:] in ("\n", "\r"):
            line = line.rstrip("\r\n")
        if not line or line.isspace():
            self.blank += 1
            return None
        first = line[0]
        if first == "#":
            self._header(line)
            return None
        if first == "{":
            return self._parse_json(line)
        lay = self.layout
        parts = line.split("\t" if "\t" in line else None, lay.maxsplit)
        n = len(parts)
        if n < lay.min_fields:
            return Failure(
                "field_count",
                line.encode("utf-8", "surrogateescape"),
                detail=f"{n} fields, at least {lay.min_fields} expected",
            )
        if n < lay.width:
            parts.extend(["-"] * (lay.width - n))
        parts.append("-")
        return self._build(lay.get(parts), line)

    def _build(self, values: tuple[str, ...], line: str) -> Outcome:
        (
            date,
            time,
            stamp,
            edge,
            nbytes,
            ip,
            method,
            path,
            status_text,
            referer,
            agent,
            query,
            rid,
            taken,
            country,
            asn,
        ) = values
        builder = self._builder
        pixel = path == builder.pixel_path or builder.is_pixel_path(path)
        if not pixel and self.ctx.pixel_only:
            return None
        ts_ms: int | None
        if stamp != "-":
            ok = stamp.isdigit() and stamp.isascii() and len(stamp) < 16
            ts_ms = int(stamp) if ok else None
        else:
            day = self._dates.get(date)
            second = self._times.get(time)
            if day is not None and second is not None:
                ts_ms = day + second
            else:
                ts_ms = self._clock.epoch_ms(date, time)
        if ts_ms is not None and ts_ms > MAX_EPOCH_MS:  # past 9999: not a real request
            ts_ms = None
        if ts_ms is None:
            return Failure(
                "bad_timestamp", line.encode("utf-8", "surrogateescape"), field="date/time"
            )
        if not self._window.contains(ts_ms):
            return Failure(IMPLAUSIBLE, line.encode("utf-8", "surrogateescape"), field="date/time")
        if status_text.isdigit() and status_text.isascii() and len(status_text) <= 3:
            status = int(status_text)
        else:
            return Failure("bad_status", line.encode("utf-8", "surrogateescape"), field="sc-status")
        if rid == "-":
            rid = content_request_id(line)
        return builder.build(
            rid,
            ts_ms,
            "" if method == "-" else method,
            status,
            "" if path == "-" else path,
            "" if query == "-" else query,
            "" if ip == "-" else ip,
            agent,
            "" if referer == "-" else referer,
            "" if edge == "-" else edge,
            "" if country == "-" else country,
            "" if asn == "-" else asn,
            count_value(nbytes),
            float(taken) if taken.replace(".", "", 1).isdigit() and taken.isascii() else 0.0,
            pixel,
        )

    def _parse_json(self, line: str) -> Outcome:
        raw = line.encode("utf-8", "surrogateescape")
        try:
            obj: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return Failure("bad_json", raw)
        if not isinstance(obj, dict):
            return Failure("bad_json", raw, detail="not an object")
        if "cs-uri-stem" not in obj or not ("timestamp(ms)" in obj or "date" in obj):
            return Failure("field_count", raw, detail="missing cs-uri-stem or time fields")
        return self._build(tuple(_json_text(obj.get(name)) for name in _USED), line)


def _json_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value or "-"
    return str(value)
