"""Decode whole log streams: one format's line decoder plus per-reason bad-line accounting.

Used by ``opens parse`` and the backfill job. Every input line gets exactly one outcome — a hit,
a skipped line (header, blank, another path) or a failure counted by reason with the first few
line numbers — and none of them stops the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser

__all__ = [
    "FORMATS",
    "BatchDecoder",
    "LineDecoder",
    "LogFormat",
    "ParseSummary",
    "batch_decoder",
    "decode_lines",
    "line_decoder",
]

LogFormat = Literal["realtime", "standard", "s3"]
FORMATS: tuple[LogFormat, ...] = ("realtime", "standard", "s3")
LineDecoder = Callable[[str], "Hit | Failure | None"]
BatchDecoder = Callable[[list[str]], "list[Hit | Failure | None]"]

EXAMPLES_PER_REASON = 5


@dataclass
class ParseSummary:
    """Counts for one run; ``examples`` keeps the first few ``file:line`` per failure reason."""

    lines: int = 0
    hits: int = 0
    skipped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(self.failures.values())

    def fail(self, reason: str, where: str) -> None:
        self.failures[reason] += 1
        seen = self.examples.setdefault(reason, [])
        if len(seen) < EXAMPLES_PER_REASON:
            seen.append(where)

    def render(self) -> str:
        """Human summary for stderr: totals, then one line per failure reason."""
        out = [
            f"{self.lines:,} lines: {self.hits:,} decoded, {self.skipped:,} skipped "
            f"(headers, blank lines, other paths), {self.bad:,} bad"
        ]
        for reason, count in self.failures.most_common():
            where = ", ".join(self.examples.get(reason, []))
            more = ", …" if count > len(self.examples.get(reason, [])) else ""
            out.append(f"  {reason}: {count:,} (first at {where}{more})")
        out.extend(f"  cannot read {name}" for name in self.unreadable)
        return "\n".join(out)


def line_decoder(
    fmt: LogFormat,
    ctx: DecodeContext,
    *,
    fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
    classifier: Classifier | None = None,
) -> tuple[LineDecoder, Callable[[], None]]:
    """``(decode one line, start a new file)`` for a format; the second forgets a header."""
    if fmt == "realtime":
        rt = RealtimeDecoder(fields, ctx, classifier=classifier)
        return rt.decode_line, _nothing
    if fmt == "standard":
        std = StandardParser(ctx, classifier=classifier)
        return std.parse_line, std.reset
    s3 = S3AccessParser(ctx, classifier=classifier)
    return s3.parse_line, _nothing


def batch_decoder(
    fmt: LogFormat,
    ctx: DecodeContext,
    *,
    fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
    classifier: Classifier | None = None,
) -> tuple[BatchDecoder, Callable[[], None]]:
    """``(decode a list of lines, start a new file)``: one outcome per line, in order.

    One call per batch, so a parser with its own ``parse_many`` (a compiled one) runs the whole
    loop without coming back to Python per line; otherwise the line decoder is mapped.
    """
    decode, new_file = line_decoder(fmt, ctx, fields=fields, classifier=classifier)
    many: BatchDecoder | None = getattr(getattr(decode, "__self__", None), "parse_many", None)
    if many is not None:
        return many, new_file

    def decode_all(lines: list[str]) -> list[Hit | Failure | None]:
        return list(map(decode, lines))

    return decode_all, new_file


def _nothing() -> None:
    return None


def decode_lines(
    decode: LineDecoder,
    lines: Iterable[str | None],
    summary: ParseSummary,
    name: str = "-",
) -> Iterator[Hit]:
    """The hits of one stream, in order; failures and skips are counted in ``summary``.

    ``None`` in ``lines`` stands for an over-long line the reader skipped.
    """
    start = n = summary.lines
    skipped = 0
    hits = 0
    try:
        for line in lines:
            n += 1
            if line is None:
                summary.fail("line_too_long", f"{name}:{n - start}")
                continue
            out = decode(line)
            if out is None:
                skipped += 1
            elif isinstance(out, Failure):
                summary.fail(out.reason, f"{name}:{n - start}")
            else:
                hits += 1
                yield out
    finally:
        summary.lines = n
        summary.skipped += skipped
        summary.hits += hits
