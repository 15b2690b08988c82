"""Percent-decoding rules for CloudFront and S3 log values, written for the hot path.

CloudFront escapes ``%`` once more in query strings (a client's ``%26`` is logged ``%2526``), so a
logged query is percent-decoded once and then parsed as an ordinary form query. Old standard logs
(2013-2020) double-encode the user agent as well. Every helper returns its input unchanged when
there is nothing to decode, which is the common case and costs one ``in`` test.
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

__all__ = [
    "MAX_COUNT",
    "count_value",
    "dash",
    "decode_query_once",
    "decode_ua_auto",
    "decode_ua_once",
    "form_value",
    "prefetch_header",
    "split_header_lines",
]


MAX_COUNT = (1 << 64) - 1


def count_value(value: str) -> int:
    """A byte count: ASCII digits that fit ClickHouse's ``UInt64``, else 0.

    An unreadable count always read as 0; one too large for any real response is unreadable
    too, rather than a value that ``opens parse`` or the sink cannot write.
    """
    if value.isdigit() and value.isascii() and len(value) <= 20:
        n = int(value)
        return n if n <= MAX_COUNT else 0
    return 0


def dash(value: str) -> str:
    """CloudFront writes ``-`` for an empty or not-applicable value."""
    return "" if value == "-" else value


def decode_ua_once(value: str) -> str:
    """Real-time logs: the user agent is URL-encoded exactly once (``%20`` for spaces)."""
    if value == "-":
        return ""
    return unquote(value) if "%" in value else value


def decode_ua_auto(value: str) -> str:
    """Standard logs: single-encoded today, double-encoded (``%2520``) in many 2013-2020 files.

    Decode once; if the result still holds escapes and no space at all, it was double-encoded, so
    decode again. A single-encoded agent with spaces decodes to text with spaces and stops there.
    (A real user agent with a literal ``%XX`` and no space would be decoded twice; none is known.)
    """
    if value == "-":
        return ""
    if "%" not in value:
        return value
    once = unquote(value)
    if "%" in once and " " not in once:
        return unquote(once)
    return once


def decode_query_once(value: str) -> str:
    """Undo CloudFront's extra ``%`` → ``%25`` escaping of a logged query string."""
    if value == "-":
        return ""
    return unquote(value) if "%" in value else value


def form_value(value: str) -> str:
    """One ``application/x-www-form-urlencoded`` value: ``+`` is a space, then percent-decode."""
    if "%" in value or "+" in value:
        return unquote_plus(value)
    return value


def split_header_lines(value: str) -> list[tuple[str, str]]:
    """``cs-headers``: ``Name:value`` pairs joined by ``%0A``; split *before* decoding values.

    Splitting first keeps a decoded value that itself contains ``%0A`` from being cut in two.
    Names keep the client's case; values are percent-decoded once.
    """
    if not value or value == "-":
        return []
    out: list[tuple[str, str]] = []
    for item in value.split("%0A"):
        if not item:
            continue
        name, sep, raw = item.partition(":")
        if not sep:
            continue
        out.append((unquote(name), unquote(raw) if "%" in raw else raw))
    return out


_PREFETCH_HEADERS = frozenset({"sec-purpose", "purpose", "x-purpose", "x-moz"})
_PREFETCH_VALUES = ("prefetch", "preview", "prerender")


def prefetch_header(value: str) -> bool:
    """``cs-headers`` holds a prefetch header: ``Sec-Purpose``, ``Purpose``, ``X-Purpose`` or
    ``X-Moz`` whose value names prefetch, preview or prerender (machine-opens.md §7; Fetch
    standard's ``Sec-Purpose``, Firefox's ``X-Moz: prefetch``). No person asked for the image."""
    for name, header_value in split_header_lines(value):
        if name.lower() in _PREFETCH_HEADERS:
            lowered = header_value.lower()
            if any(mark in lowered for mark in _PREFETCH_VALUES):
                return True
    return False
