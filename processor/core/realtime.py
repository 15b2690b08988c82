"""Decode CloudFront real-time log records (one TAB-separated line per Kinesis record)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS, canonical_order
from processor.core.hit import Hit
from processor.core.outcome import Failure


def _value(parts: list[str], index: int | None) -> str:
    if index is None:
        return ""
    v = parts[index]
    return "" if v == "-" else v


class RealtimeDecoder:
    """Turns one record's bytes into a ``Hit``, ``None`` (not the pixel) or a ``Failure``.

    Positions come from CloudFront's canonical order restricted to the selected fields, never
    from the order the configuration lists them in.
    """

    def __init__(
        self, fields: Iterable[str] = DEFAULT_REALTIME_FIELDS, ctx: DecodeContext | None = None
    ) -> None:
        self.fields = canonical_order(fields)
        self.ctx = ctx or DecodeContext()
        self._pos = {name: i for i, name in enumerate(self.fields)}

    def decode(self, data: bytes) -> Hit | Failure | None:
        try:
            line = data.decode("utf-8", errors="replace").rstrip("\r\n")
        except Exception as exc:  # pragma: no cover - decode(errors=replace) does not raise
            return Failure("encoding", data, detail=str(exc))
        parts = line.split("\t")
        if len(parts) != len(self.fields):
            return Failure(
                "field_count", data, detail=f"{len(parts)} fields, expected {len(self.fields)}"
            )
        pos = self._pos.get
        request_id = _value(parts, pos("x-edge-request-id"))
        if not request_id:
            return Failure("missing_request_id", data, field="x-edge-request-id")
        try:
            ts_ms = round(float(_value(parts, pos("timestamp"))) * 1000)
        except ValueError:
            return Failure("bad_timestamp", data, field="timestamp")
        stem = _value(parts, pos("cs-uri-stem"))
        path, _, stem_query = stem.partition("?")
        query = _value(parts, pos("cs-uri-query")) or stem_query
        if self.ctx.pixel_only and path != self.ctx.pixel_path:
            return None
        # CloudFront escapes '%' once more in queries: decode once, then parse as a form query.
        params = dict(parse_qsl(unquote(query), keep_blank_values=True))
        status_s = _value(parts, pos("sc-status"))
        bytes_s = _value(parts, pos("sc-bytes"))
        taken_s = _value(parts, pos("time-taken"))
        return Hit(
            request_id=request_id,
            ts_ms=ts_ms,
            source="realtime",
            sid=params.get("sid") or None,
            cid=params.get("cid") or None,
            cat=params.get("cat", ""),
            signature="missing",
            method=_value(parts, pos("cs-method")),
            status=int(status_s) if status_s.isdigit() else 0,
            uri=path,
            edge_location=_value(parts, pos("x-edge-location")),
            client_ip=_value(parts, pos("c-ip")),
            country=_value(parts, pos("c-country")),
            user_agent=unquote(_value(parts, pos("cs-user-agent"))),
            client="",
            device="",
            machine=None,
            referer=_value(parts, pos("cs-referer")),
            bytes=int(bytes_s) if bytes_s.isdigit() else 0,
            time_taken=float(taken_s) if taken_s.replace(".", "", 1).isdigit() else 0.0,
        )
