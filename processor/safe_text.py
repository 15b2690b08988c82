"""Outside text (campaign ids, categories, file and AWS names) made safe to print.

Anyone who can request the pixel chooses a campaign id, so every value printed by ``opens``
goes through here first (issue #14, finding 5):

- ``visible``: control characters (C0, DEL, C1), bidi and other invisible format characters,
  line/paragraph separators and lone surrogates become backslash escapes (``\\x1b``,
  ``\\u202e``): shown, never interpreted by a terminal (ANSI/OSC sequences need a raw ESC).
- ``rich_text``: a ``rich`` ``Text`` — never parsed as console markup (``[/]`` stays text).
- ``csv_cell`` / ``write_csv``: OWASP's CSV-injection guidance — a cell starting with ``=``,
  ``+``, ``-``, ``@``, tab or CR (or their full-width forms) gets a leading ``'``; the writer
  quotes fields holding separators, quotes, CR or LF.
- ``json_safe``: JSON text with the same characters as ``\\uXXXX`` escapes, so the data parse
  back exactly and a terminal showing the JSON sees no control byte.

Pure functions, no I/O.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

__all__ = [
    "csv_cell",
    "error_line",
    "is_unsafe_char",
    "json_safe",
    "rich_text",
    "visible",
    "write_csv",
]

# Categories a terminal may act on or that hide/reorder text: controls, format characters
# (bidi overrides, zero-width spaces, soft hyphen), surrogates, private use, unassigned, and
# line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Zero-width joiner: joins emoji sequences, cannot reorder or hide text on its own.
_KEEP = frozenset({"\u200d"})
# OWASP CSV injection triggers, with the full-width forms some spreadsheets also read.
_FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


@lru_cache(maxsize=4096)
def is_unsafe_char(ch: str) -> bool:
    """True for one character a terminal could interpret or that hides or reorders text."""
    if ch in _KEEP:
        return False
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object) -> str:
    """``str(value)`` with every unsafe character written as a backslash escape."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to look at
    return "".join(_escape(ch) if is_unsafe_char(ch) else ch for ch in text)


def rich_text(value: object, style: str = "") -> Text:
    """A table cell / console line that ``rich`` prints as is: no markup, no emoji codes."""
    from rich.text import Text  # only the printing commands pay for rich

    return Text(visible(value), style=style)


def error_line(message: object) -> Text:
    """``error: <message>`` for stderr; the message (it may quote user input) printed as is."""
    from rich.text import Text

    return Text.assemble(("error:", "red"), " ", visible(message))


def csv_cell(value: object) -> Any:
    """One CSV value: numbers as they are, text made visible and defused as a formula."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = visible(value)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text (header first); every cell through ``csv_cell``, fields quoted when needed."""
    buf = io.StringIO()
    # QUOTE_MINIMAL quotes a field holding the delimiter, the quote or a line break (a raw CR or
    # LF cannot reach a cell: ``visible`` escaped it).
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow([csv_cell(h) for h in header])
    for row in rows:
        w.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def _json_char(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON has no escape past the BMP: a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every unsafe character as
    a ``\\u`` escape: still valid JSON, the same data once parsed (escapes are only legal, and
    unsafe characters only present, inside strings). JSON escapes C0 itself."""
    if text.isascii():
        return text.replace("\x7f", "\\u007f")
    return "".join(_json_char(ch) if is_unsafe_char(ch) else ch for ch in text)
