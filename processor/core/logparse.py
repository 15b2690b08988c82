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
from processor.core.native import realtime_decoder, standard_parser
from processor.core.outcome import Failure
from processor.core.s3access import S3AccessParser
from processor.safe_text import visible

__all__ = [
    "FORMATS",
    "BlockDecoder",
    "LineDecoder",
    "LogFormat",
    "ParseSummary",
    "block_decoder",
    "decode_blocks",
    "decode_lines",
    "line_decoder",
]

LogFormat = Literal["realtime", "standard", "s3"]
FORMATS: tuple[LogFormat, ...] = ("realtime", "standard", "s3")
LineDecoder = Callable[[str], "Hit | Failure | None"]
BlockDecoder = Callable[[list[str]], "list[Hit | Failure | None]"]

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
    # Pixel requests that are not hits (DESIGN §2), by ``not_a_hit: <reason>``; not bad lines.
    not_hits: Counter[str] = field(default_factory=Counter)
    # Files read only up to a damage or a read error: ``name: reason after line N``.
    damaged: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(self.failures.values())

    def fail(self, reason: str, where: str) -> None:
        self.failures[reason] += 1
        seen = self.examples.setdefault(reason, [])
        if len(seen) < EXAMPLES_PER_REASON:
            seen.append(where)

    def not_hit(self, reason: str, where: str) -> None:
        key = f"not_a_hit: {reason}"
        self.not_hits[key] += 1
        seen = self.examples.setdefault(key, [])
        if len(seen) < EXAMPLES_PER_REASON:
            seen.append(where)

    def render(self) -> str:
        """Human summary for stderr: totals, then one line per failure or not-a-hit reason."""
        not_hits = sum(self.not_hits.values())
        out = [
            f"{self.lines:,} lines: {self.hits:,} decoded, {self.skipped:,} skipped "
            f"(headers, blank lines, other paths), "
            + (f"{not_hits:,} pixel requests not hits, " if not_hits else "")
            + f"{self.bad:,} bad"
        ]
        for reason, count in (self.failures + self.not_hits).most_common():
            where = ", ".join(self.examples.get(reason, []))
            more = ", …" if count > len(self.examples.get(reason, [])) else ""
            out.append(f"  {reason}: {count:,} (first at {where}{more})")
        out.extend(f"  cannot read {name}" for name in self.unreadable)
        out.extend(f"  damaged {what}" for what in self.damaged)
        # File names are outside text: shown, never interpreted by the terminal.
        return "\n".join(map(visible, out))


def line_decoder(
    fmt: LogFormat,
    ctx: DecodeContext,
    *,
    fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
    classifier: Classifier | None = None,
) -> tuple[LineDecoder, Callable[[], None]]:
    """``(decode one line, start a new file)`` for a format; the second forgets a header."""
    if fmt == "realtime":
        rt = realtime_decoder(fields, ctx, classifier=classifier)
        return rt.decode_line, _nothing
    if fmt == "standard":
        std = standard_parser(ctx, classifier=classifier)
        return std.parse_line, std.reset
    s3 = S3AccessParser(ctx, classifier=classifier)
    return s3.parse_line, _nothing


def block_decoder(
    fmt: LogFormat,
    ctx: DecodeContext,
    *,
    fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
    classifier: Classifier | None = None,
) -> tuple[BlockDecoder, Callable[[], None]]:
    """``line_decoder`` in batch form: ``(decode many lines, start a new file)``."""
    if fmt == "realtime":
        rt = realtime_decoder(fields, ctx, classifier=classifier)
        return rt.decode_line_many, _nothing
    if fmt == "standard":
        std = standard_parser(ctx, classifier=classifier)
        return std.parse_many, std.reset
    s3 = S3AccessParser(ctx, classifier=classifier)
    return s3.parse_many, _nothing


def _nothing() -> None:
    return None


def decode_lines(
    decode: LineDecoder,
    lines: Iterable[str | None],
    summary: ParseSummary,
    name: str = "-",
    *,
    only_hits: bool = False,
) -> Iterator[Hit]:
    """The hits of one stream, in order; failures and skips are counted in ``summary``.

    ``None`` in ``lines`` stands for an over-long line the reader skipped. With ``only_hits`` a
    pixel request that is not a hit (``Hit.not_hit_reason``) is counted, not yielded.
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
            elif only_hits and (why := out.not_hit_reason) is not None:
                summary.not_hit(why, f"{name}:{n - start}")
            else:
                hits += 1
                yield out
    finally:
        summary.lines = n
        summary.skipped += skipped
        summary.hits += hits


def decode_blocks(
    decode: BlockDecoder,
    blocks: Iterable[list[str | None]],
    summary: ParseSummary,
    name: str = "-",
    *,
    only_hits: bool = False,
) -> Iterator[list[Hit]]:
    """``decode_lines`` for blocks of lines: the hits of each block, same counts in ``summary``.

    The filter is here, before any NDJSON is written, so the compiled writer (``native.ndjson``)
    and the Python one print the same objects.
    """
    start = n = summary.lines
    skipped = 0
    hits = 0
    try:
        for block in blocks:
            found: list[Hit] = []
            for out in _decode_block(decode, block):
                n += 1
                if out is None:
                    skipped += 1
                elif isinstance(out, Failure):
                    summary.fail(out.reason, f"{name}:{n - start}")
                elif only_hits and (why := out.not_hit_reason) is not None:
                    summary.not_hit(why, f"{name}:{n - start}")
                else:
                    found.append(out)
            hits += len(found)
            yield found
    finally:
        summary.lines = n
        summary.skipped += skipped
        summary.hits += hits


_TOO_LONG = Failure("line_too_long", b"")


def _decode_block(decode: BlockDecoder, block: list[str | None]) -> list[Hit | Failure | None]:
    if None not in block:
        return decode(block)  # type: ignore[arg-type]  # no None in it: list[str]
    outs = iter(decode([line for line in block if line is not None]))
    return [_TOO_LONG if line is None else next(outs) for line in block]
