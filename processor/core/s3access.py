"""Parse S3 server access log lines (the pixel served straight from its bucket, or the origin).

One line per request, space-separated; ``Time`` in ``[...]``; ``Request-URI``, ``Referer`` and
``User-Agent`` in ``"..."`` (a user agent holds spaces and commas) — except for some operations
(``BATCH.DELETE.OBJECT``), where they are a bare ``-``. Any field may be ``-``. AWS appends fields
at the end from time to time (17, 18, 24, 26, 27 so far), so fields are read by position and any
extras ignored. Unlike CloudFront, S3 logs the request URI as the client sent it: its query is
parsed as a form query directly, and the user agent is not URL-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import unquote_plus

from processor.core.builder import HitBuilder, content_request_id
from processor.core.classify import Classifier
from processor.core.clock import IMPLAUSIBLE, EventWindow, S3Clock
from processor.core.context import DecodeContext
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.text import count_value

__all__ = ["MIN_S3_FIELDS", "S3AccessParser", "tokenize_s3"]

Outcome = Hit | Failure | None

# Bucket owner … User-Agent: the oldest layout AWS documents.
MIN_S3_FIELDS = 17


class _Unterminated(ValueError):
    pass


def tokenize_s3(line: str) -> list[str]:
    """Split one line into fields: ``[..]``, ``".."`` (``\\"`` escapes) or a bare token.

    Raises ``ValueError`` on an unterminated bracket or quote.
    """
    out: list[str] = []
    i, n = 0, len(line)
    find = line.find
    while i < n:
        c = line[i]
        if c == " ":
            i += 1
            continue
        if c == "[":
            j = find("]", i + 1)
            if j < 0:
                msg = "unterminated ["
                raise _Unterminated(msg)
            out.append(line[i + 1 : j])
            i = j + 1
        elif c == '"':
            j = find('"', i + 1)
            while j > 0 and line[j - 1] == "\\":
                j = find('"', j + 1)
            if j < 0:
                msg = 'unterminated "'
                raise _Unterminated(msg)
            value = line[i + 1 : j]
            out.append(value.replace('\\"', '"') if "\\" in value else value)
            i = j + 1
        else:
            j = find(" ", i)
            if j < 0:
                j = n
            out.append(line[i:j])
            i = j
    return out


def _identity(value: str) -> str:
    return "" if value == "-" else value


def _int(value: str) -> int:
    return count_value(value)


class S3AccessParser:
    """``parse_line`` → ``Hit``, ``None`` (blank line or, with ``pixel_only``, another key) or
    ``Failure``; never raises."""

    def __init__(self, ctx: DecodeContext | None = None, *, classifier: Classifier | None = None):
        self.ctx = ctx or DecodeContext()
        self._builder = HitBuilder(
            self.ctx, "s3", _identity, escaped_query=False, classifier=classifier
        )
        self._clock = S3Clock()
        self._window = EventWindow(self.ctx)
        self._pixel_key = self.ctx.pixel_path.lstrip("/")
        self.blank = 0

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
            return Failure("unexpected", _raw(line), detail=f"{type(exc).__name__}: {exc}")

    def _parse(self, line: str) -> Outcome:
        line = line.rstrip("\r\n")
        if not line.strip():
            self.blank += 1
            return None
        try:
            f = tokenize_s3(line)
        except _Unterminated as exc:
            return Failure("unterminated_quote", _raw(line), detail=str(exc))
        if len(f) < MIN_S3_FIELDS:
            return Failure(
                "field_count",
                _raw(line),
                detail=f"{len(f)} fields, at least {MIN_S3_FIELDS} expected",
            )
        operation, key, request_uri = f[6], f[7], f[8]
        method, path, query = _request_parts(request_uri, operation)
        pixel = self._is_pixel(key, path)
        if not pixel and self.ctx.pixel_only:
            return None
        ts_ms = self._clock.epoch_ms(f[2])
        if ts_ms is None:
            return Failure("bad_timestamp", _raw(line), field="time")
        if not self._window.contains(ts_ms):
            return Failure(IMPLAUSIBLE, _raw(line), field="time")
        status_text = f[9]
        if status_text.isdigit() and status_text.isascii() and len(status_text) <= 3:
            status = int(status_text)
        elif status_text == "-":
            status = 0
        else:
            return Failure("bad_status", _raw(line), field="http-status")
        request_id = f[5] if f[5] != "-" else content_request_id(line)
        ip, referer = f[3], f[15]
        return self._builder.build(
            request_id,
            ts_ms,
            method,
            status,
            path,
            query,
            "" if ip == "-" else ip,
            f[16],
            "" if referer == "-" else referer,
            "",
            "",
            "",
            _int(f[11]),
            _int(f[13]) / 1000,
            pixel,
        )

    def _is_pixel(self, key: str, path: str) -> bool:
        if key != "-":
            decoded = unquote_plus(key) if ("%" in key or "+" in key) else key
            return decoded == self._pixel_key
        return self._builder.is_pixel_path(path)


def _request_parts(request_uri: str, operation: str) -> tuple[str, str, str]:
    """``(method, path, query)`` from ``GET /key?q HTTP/1.1``, or from the operation name."""
    pieces = request_uri.split(" ")
    if len(pieces) >= 2 and request_uri != "-":
        target = pieces[1]
        path, _, query = target.partition("?")
        return pieces[0], path, query
    op = operation.split(".")
    method = op[1] if len(op) >= 3 and op[0] in ("REST", "WEBSITE", "SOAP") else ""
    return method, "", ""


def _raw(line: str) -> bytes:
    return line.encode("utf-8", "surrogateescape")
