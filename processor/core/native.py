"""The compiled fast path (``native/``, module ``opens_native``), chosen when it is installed.

The Rust core runs the per-line hot loop (split, timestamps, pixel query, HMAC, IPv4
truncation) and builds the ``Hit`` with the same ``new_hit``; classification stays in Python,
cached per raw user agent. It decides only lines it can decode exactly like the reference:
everything else (headers, JSON lines, every failure, invalid UTF-8, IPv6 addresses, lines
without a request id …) comes back as ``DEFER`` and the pure-Python parent class decodes it.
So bad lines get the same reasons and counts on both paths, and ``StandardParser`` /
``RealtimeDecoder`` remain the readable reference.

The installed core predates three checks (issue #14): the event-time window, v1 over a value
holding a newline, and ``require_signature``; it also only knows v1. A hit of the core that any
of them could change (``_Suspect``: time outside the window, ``invalid`` — maybe a v2 ``sig`` —,
``valid`` over a newline, ``missing`` when signatures are required) is decoded again by the
reference, so both paths still agree; ordinary hits pay one comparison.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import Any

import orjson

from processor.core.builder import HitBuilder
from processor.core.classify import RULES_VERSION, Classifier
from processor.core.clock import EventWindow
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import HIT_FIELDS, HIT_METHODS, HIT_STATUSES, Hit, new_hit
from processor.core.kpl import KPL_MAGIC
from processor.core.outcome import Failure
from processor.core.realtime import _READ, RealtimeDecoder
from processor.core.standard import StandardLayout, StandardParser

try:
    import opens_native as _native
except ImportError:  # pragma: no cover - the build is part of `make install`
    _native = None
if _native is not None and getattr(_native, "HIT_FIELDS", None) != len(HIT_FIELDS):
    # A core built for another ``Hit`` layout (an older build left installed): the reference
    # decodes everything until ``make install`` rebuilds it.
    _native = None  # pragma: no cover

__all__ = ["AVAILABLE", "ndjson", "realtime_decoder", "standard_parser"]

AVAILABLE = _native is not None

# Returned by the core for a line the Python reference must decode.
DEFER: Any = object()

Outcome = Any  # Hit | Failure | None, as the parent classes return


def _module() -> Any:
    if _native is None:
        msg = "opens_native is not installed (make install builds it)"
        raise RuntimeError(msg)
    return _native


def _builder_args(builder: HitBuilder) -> dict[str, Any]:
    ctx = builder.ctx
    return {
        "pixel_path": builder.pixel_path,
        "pixel_only": ctx.pixel_only,
        "escaped": builder._escaped,
        "legacy": ctx.legacy_campaign_param,
        "secrets": list(ctx.secrets),
        "ip_privacy": ctx.ip_privacy,
        "agent_fn": builder._agent,
        "machine_fn": builder._tag,
        "ip_fn": builder._ip,
        "new_hit": new_hit,
    }


def _fast_path(core: Any, builder: HitBuilder) -> None:
    """Let the core decide the classifier's person case itself (``Classifier.tag``'s fast path,
    from the classifier's own sets, which ``reload`` updates in place)."""
    c = builder.classifier
    core.set_fast_path(c.fast_v4, c.fast_asns, RULES_VERSION)


class _Suspect:
    """Which of the core's hits the reference must decode again (see the module docstring)."""

    __slots__ = ("require", "window")

    def __init__(self, ctx: DecodeContext) -> None:
        self.window = EventWindow(ctx)
        self.require = ctx.require_signature

    def check(self) -> Any:
        """A predicate for one batch (the window's upper bound read once per batch)."""
        low, high = self.window.bounds()
        require = self.require

        def suspect(out: Any) -> bool:
            if out.__class__ is not Hit:
                return False
            if not low <= out.ts_ms <= high:
                return True
            sig = out.signature
            if sig == "valid":
                return "\n" in (out.sid or "") or "\n" in (out.cid or "") or "\n" in out.cat
            return sig == "invalid" or (require and sig == "missing")

        return suspect

    def clean(self, outs: list[Any]) -> bool:
        """True when no outcome of a batch can be suspect: a few C-level passes over its hits
        instead of a Python call per line (the common case on real logs)."""
        hits = [o for o in outs if o.__class__ is Hit]
        if not hits:
            return True
        low, high = self.window.bounds()
        if min(map(_TS, hits)) < low or max(map(_TS, hits)) > high:
            return False
        signatures = set(map(_SIGNATURE, hits))
        if "invalid" in signatures or (self.require and "missing" in signatures):
            return False
        if "valid" in signatures:
            return not any("\n" in "\0".join(filter(None, map(get, hits))) for get in _VALUES)
        return True


_TS = attrgetter("ts_ms")
_SIGNATURE = attrgetter("signature")
_VALUES = (attrgetter("sid"), attrgetter("cid"), attrgetter("cat"))


def _positions(lay: StandardLayout) -> list[int]:
    # The order of ``standard._USED``.
    return [
        lay.date,
        lay.time,
        lay.ts_ms,
        lay.edge,
        lay.sc_bytes,
        lay.ip,
        lay.method,
        lay.stem,
        lay.status,
        lay.referer,
        lay.ua,
        lay.query,
        lay.rid,
        lay.taken,
        lay.country,
        lay.asn,
    ]


class NativeStandardParser(StandardParser):
    """``StandardParser`` with the compiled hot loop; identical outcomes."""

    def __init__(self, ctx: DecodeContext | None = None, *, classifier: Classifier | None = None):
        super().__init__(ctx, classifier=classifier)
        self._core = _module().StandardCore(DEFER, **_builder_args(self._builder))
        self._core.set_countable(sorted(HIT_METHODS), sorted(HIT_STATUSES))
        _fast_path(self._core, self._builder)
        self._pushed: StandardLayout | None = None
        self._push()
        self.suspect = _Suspect(self.ctx)
        # ``parse_columns``' runs of the current block: (first line, codes, layout in force).
        self._runs: list[tuple[int, bytes, StandardLayout]] = []

    def _push(self) -> None:
        lay = self.layout
        self._core.set_layout(_positions(lay), lay.maxsplit, lay.min_fields)
        self._pushed = lay

    def reset(self) -> None:
        super().reset()
        if self.layout is not self._pushed:
            self._push()

    def parse_line(self, line: str) -> Outcome:
        out = self._core.parse(line)
        if out is DEFER or self.suspect.check()(out):
            out = super().parse_line(line)
            if self.layout is not self._pushed:
                self._push()  # the line was a ``#Fields:`` header
        return out

    def parse_many(self, lines: list[str]) -> list[Outcome]:
        # The core stops a run right after a ``#`` line, so a header is applied (by the
        # reference, below) before the core parses the line after it.
        core = self._core
        reference = super().parse_line
        result: list[Outcome] = []
        start, end = 0, len(lines)
        while start < end:
            outs, deferred, stop = core.parse_many(lines, start)
            if deferred or not self.suspect.clean(outs):
                # In order: a run ends with its ``#Fields:`` header, applied after the lines
                # before it.
                suspect = self.suspect.check()
                for i, out in enumerate(outs):
                    if out is DEFER or suspect(out):
                        outs[i] = reference(lines[start + i])
            if self.layout is not self._pushed:
                self._push()
            if start == 0 and stop == end:
                return outs  # type: ignore[no-any-return]
            result.extend(outs)
            start = stop
        return result

    def parse_columns(self, lines: list[str]) -> tuple[list[Hit], list[tuple[int, Failure]]]:
        """``parse_many`` without a ``Hit`` per countable line: the core appends those to its
        columns (``take_columns``). Returns what the reference decoded from the lines the core
        deferred: their hits (countable or not) and their failures with their index in
        ``lines``. Lines with nothing to count leave no trace, as ``None`` in ``parse_many``.
        The column rows the core could get wrong (``_Suspect``) are found on the columns and
        decoded again with ``redo_rows`` (``backfill.encode.recheck_rows`` does both)."""
        core = self._core
        reference = super().parse_line
        hits: list[Hit] = []
        failures: list[tuple[int, Failure]] = []
        self._runs = []
        start, end = 0, len(lines)
        while start < end:
            codes, stop = core.parse_columns(lines, start)
            self._runs.append((start, codes, self.layout))
            # ``s`` (nothing to count) may be a pixel request with an implausible time, a bad
            # line for the reference; the core does not know the window.
            for m in _DEFERRED_OR_SKIPPED.finditer(codes):
                at = m.start()
                out = reference(lines[start + at])
                if isinstance(out, Failure):
                    failures.append((start + at, out))
                elif out is not None and codes[at] == _D:
                    hits.append(out)
            if self.layout is not self._pushed:
                self._push()  # the run ended with a ``#Fields:`` header
            start = stop
        return hits, failures

    def redo_rows(self, rows: Iterable[int], lines: list[str]) -> Iterator[tuple[int, Outcome]]:
        """``(index in lines, reference outcome)`` for column rows (numbered since the last
        ``parse_columns``) that ``_Suspect`` flags; ``lines`` as given to ``parse_columns``.
        Each line is decoded with the layout that was in force when the core read it."""
        wanted = sorted(rows)
        row, k = 0, 0
        current = self.layout
        try:
            for start, codes, layout in self._runs:
                self.layout = layout
                for m in _COLUMN_HIT.finditer(codes):
                    if k == len(wanted):
                        return
                    if row == wanted[k]:
                        yield (
                            start + m.start(),
                            StandardParser.parse_line(self, lines[start + m.start()]),
                        )
                        k += 1
                    row += 1
        finally:
            self.layout = current

    def take_columns(self) -> tuple[Any, ...]:
        """The countable hits ``parse_columns`` kept since the last call: ``(rows, [(offsets,
        data)] * 16, ts, status, bytes, time_taken)`` — little-endian Arrow buffers, string
        columns in ``HIT_COLUMNS`` order with i64 offsets (``backfill.encode.native_rows``)."""
        return self._core.take_columns()  # type: ignore[no-any-return]


_D = ord("d")
_DEFERRED_OR_SKIPPED = re.compile(b"[ds]")
_COLUMN_HIT = re.compile(b"h")


class NativeRealtimeDecoder(RealtimeDecoder):
    """``RealtimeDecoder`` with the compiled hot loop; identical outcomes."""

    def __init__(
        self,
        fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
        ctx: DecodeContext | None = None,
        *,
        classifier: Classifier | None = None,
    ) -> None:
        super().__init__(fields, ctx, classifier=classifier)
        self._core = _module().RealtimeCore(
            DEFER,
            positions=[self._pos.get(name, -1) for name in _READ],
            n_fields=self._n,
            has_stem=self._has_stem,
            has_headers=self._has_headers,
            kpl_magic=KPL_MAGIC,
            **_builder_args(self._builder),
        )
        _fast_path(self._core, self._builder)
        self.suspect = _Suspect(self.ctx)

    def decode(self, data: bytes) -> Outcome:
        out = self._core.decode(data)
        return super().decode(data) if out is DEFER or self.suspect.check()(out) else out

    def decode_many(self, records: Iterable[bytes]) -> list[Outcome]:
        records = records if isinstance(records, list) else list(records)
        outs, deferred = self._core.decode_many(records)
        if not deferred and self.suspect.clean(outs):
            return outs  # type: ignore[no-any-return]
        suspect = self.suspect.check()
        result: list[Outcome] = []
        for data, out in zip(records, outs, strict=True):
            if out is DEFER or suspect(out):
                result.extend(self.decode_kinesis(data))  # KPL aggregates: several outcomes
            else:
                result.append(out)
        return result

    def decode_line(self, line: str, raw: bytes | None = None) -> Outcome:
        out = self._core.decode_line(line)
        if out is DEFER or self.suspect.check()(out):
            return super().decode_line(line, raw)
        return out

    def decode_line_many(self, lines: list[str]) -> list[Outcome]:
        outs, deferred = self._core.decode_line_many(lines)
        if deferred or not self.suspect.clean(outs):
            reference = super().decode_line
            suspect = self.suspect.check()
            for i, out in enumerate(outs):
                if out is DEFER or suspect(out):
                    outs[i] = reference(lines[i])
        return outs  # type: ignore[no-any-return]


def standard_parser(
    ctx: DecodeContext | None = None, *, classifier: Classifier | None = None
) -> StandardParser:
    """The fastest available standard log parser (native when installed)."""
    if AVAILABLE:
        return NativeStandardParser(ctx, classifier=classifier)
    return StandardParser(ctx, classifier=classifier)


def realtime_decoder(
    fields: Iterable[str] = DEFAULT_REALTIME_FIELDS,
    ctx: DecodeContext | None = None,
    *,
    classifier: Classifier | None = None,
) -> RealtimeDecoder:
    """The fastest available real-time record decoder (native when installed)."""
    if AVAILABLE:
        return NativeRealtimeDecoder(fields, ctx, classifier=classifier)
    return RealtimeDecoder(fields, ctx, classifier=classifier)


def _ndjson_line(hit: Hit) -> bytes:
    return orjson.dumps(hit.to_json_dict(), option=orjson.OPT_APPEND_NEWLINE)


def _ndjson_python(hits: list[Hit]) -> bytes:
    return b"".join(map(_ndjson_line, hits))


# A hit the writer cannot render exactly (a float orjson writes with an exponent, a year
# outside 1000-9999 …) is written by ``_ndjson_line``, so the bytes are always the reference's.
_writer = _native.NdjsonWriter(new_hit, _ndjson_line) if _native is not None else None


def ndjson(hits: list[Hit]) -> bytes:
    """The NDJSON lines of ``opens parse`` (DESIGN §4) for many hits, as one ``bytes``."""
    if _writer is not None:
        return _writer.dumps(hits)  # type: ignore[no-any-return]
    return _ndjson_python(hits)
