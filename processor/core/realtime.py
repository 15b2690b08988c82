"""Decode CloudFront real-time log records (one TAB-separated line per Kinesis record).

Positions come from CloudFront's canonical order restricted to the selected fields, never from
the order the configuration lists them in. Values: ``-`` is empty; the user agent is URL-encoded
once; ``cs-uri-stem`` carries the query string in real-time logs, ``cs-uri-query`` (when
selected) carries it too, both with CloudFront's extra ``%25`` escaping; ``cs-headers`` is
``%0A``-joined and split before decoding. A configuration without ``cs-uri-stem`` (AWS's own pixel
sample selects only ``timestamp``, ``c-ip``, ``cs-user-agent``, ``cs-uri-query``) is attached to
the pixel's cache behaviour, so every record is taken as a pixel request; one without
``x-edge-request-id`` gets a deterministic id from the record's content.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from urllib.parse import quote

from processor.core.builder import HitBuilder, content_request_id
from processor.core.classify import Classifier
from processor.core.clock import IMPLAUSIBLE, EventWindow, epoch_ms_from_seconds_text
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS, canonical_order
from processor.core.hit import Hit
from processor.core.kpl import KPL_MAGIC, deaggregate
from processor.core.outcome import Failure
from processor.core.text import count_value, decode_ua_once, prefetch_header, split_header_lines

__all__ = ["RealtimeDecoder"]

Outcome = Hit | Failure | None

# The fields the decoder reads, in the order ``_decode`` unpacks them.
_READ = (
    "timestamp",
    "c-ip",
    "sc-status",
    "sc-bytes",
    "cs-method",
    "cs-uri-stem",
    "x-edge-location",
    "x-edge-request-id",
    "time-taken",
    "cs-user-agent",
    "cs-referer",
    "cs-uri-query",
    "c-country",
    "asn",
)


class RealtimeDecoder:
    """Turns one record's bytes into a ``Hit``, ``None`` (not the pixel) or a ``Failure``."""

    def __init__(
        self,
        fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
        ctx: DecodeContext | None = None,
        *,
        classifier: Classifier | None = None,
    ) -> None:
        self.fields = canonical_order(fields)
        self.ctx = ctx or DecodeContext()
        self._n = len(self.fields)
        pos = {name: i for i, name in enumerate(self.fields)}
        self._pos = pos
        self._has_stem = "cs-uri-stem" in pos
        self._has_headers = "cs-headers" in pos
        self._i_headers = pos.get("cs-headers", -1)
        # One C call fetches every field read; an unselected field (-1) reads the "-" appended
        # after splitting.
        self._get = itemgetter(*(pos.get(name, -1) for name in _READ))
        self._builder = HitBuilder(self.ctx, "realtime", decode_ua_once, classifier=classifier)
        self._window = EventWindow(self.ctx)

    # -- public API ------------------------------------------------------------------------

    def decode(self, data: bytes) -> Outcome:
        """One plain record. A KPL aggregate is a ``Failure``: use ``decode_kinesis`` for those."""
        if data.startswith(KPL_MAGIC):
            records = deaggregate(data)
            if len(records) != 1 or records[0] is not data:
                return Failure(
                    "kpl_aggregated", data, detail="aggregated record: use decode_kinesis()"
                )
        return self._safe(data.decode("utf-8", errors="replace"), data)

    def decode_kinesis(self, data: bytes) -> list[Outcome]:
        """Every user record of one Kinesis record (KPL-deaggregated; one for plain records)."""
        return [self.decode(record) for record in deaggregate(data)]

    def decode_many(self, records: Iterable[bytes]) -> list[Outcome]:
        """A batch of Kinesis record payloads, each deaggregated, outcomes in order."""
        out: list[Outcome] = []
        for data in records:
            out.extend(self.decode_kinesis(data))
        return out

    def decode_line_many(self, lines: list[str]) -> list[Outcome]:
        """The outcomes of many records as text, in order (batch form of ``decode_line``)."""
        decode = self.decode_line
        return [decode(line) for line in lines]

    def decode_line(self, line: str, raw: bytes | None = None) -> Outcome:
        """One record as text (a line of a file of records; blank lines are ``None``)."""
        if not line or line.isspace():
            return None
        return self._safe(line, raw)

    def _safe(self, line: str, raw: bytes | None) -> Outcome:
        try:
            return self._decode(line, raw)
        except Exception as exc:
            return Failure("unexpected", _raw(line, raw), detail=f"{type(exc).__name__}: {exc}")

    # -- hot path --------------------------------------------------------------------------

    def _decode(self, line: str, raw: bytes | None) -> Outcome:
        if line[-1:] == "\n":
            line = line[:-2] if line[-2:] == "\r\n" else line[:-1]
        parts = line.split("\t")
        if len(parts) != self._n:
            if not line.strip():
                return Failure("empty", _raw(line, raw))
            return Failure(
                "field_count", _raw(line, raw), detail=f"{len(parts)} fields, expected {self._n}"
            )
        parts.append("-")
        (
            stamp,
            ip,
            status_text,
            nbytes,
            method,
            stem,
            edge,
            rid,
            taken,
            agent,
            referer,
            query,
            country,
            asn,
        ) = self._get(parts)
        builder = self._builder
        if self._has_stem:
            path, _, stem_query = stem.partition("?")
            pixel = path == builder.pixel_path or builder.is_pixel_path(path)
            if not pixel and self.ctx.pixel_only:
                return None
            if query == "-":
                query = stem_query
        else:
            path, pixel = builder.pixel_path, True
        ts_ms = epoch_ms_from_seconds_text(stamp)
        if ts_ms is None:
            return Failure("bad_timestamp", _raw(line, raw), field="timestamp")
        if not self._window.contains(ts_ms):
            return Failure(IMPLAUSIBLE, _raw(line, raw), field="timestamp")
        if status_text.isdigit() and status_text.isascii() and len(status_text) <= 3:
            status = int(status_text)
        elif status_text == "-":
            status = 0
        else:
            return Failure("bad_status", _raw(line, raw), field="sc-status")
        if rid == "-":
            rid = content_request_id(line)
        prefetch = False
        if self._has_headers:
            headers = parts[self._i_headers]
            if agent == "-" or referer == "-":
                agent, referer = self._from_headers(headers, agent, referer)
            prefetch = prefetch_header(headers)
        return builder.build(
            rid,
            ts_ms,
            "" if method == "-" else method,
            status,
            path,
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
            prefetch,
        )

    @staticmethod
    def _from_headers(value: str, agent: str, referer: str) -> tuple[str, str]:
        """Fill an unselected user agent / referer from ``cs-headers`` (values come decoded)."""
        for name, header_value in split_header_lines(value):
            lowered = name.lower()
            if lowered == "user-agent" and agent == "-":
                agent = quote(header_value, safe="/;(),:+=")
            elif lowered == "referer" and referer == "-":
                referer = header_value
        return agent, referer


def _raw(line: str, raw: bytes | None) -> bytes:
    return raw if raw is not None else line.encode("utf-8", "surrogateescape")
