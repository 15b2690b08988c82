"""The ``--direct`` Arrow-column path of ``decode_object`` against its ``Hit`` path.

Both decode the same object; the manifest entry (lines, hits, failures with their line numbers,
hits outside the window, completeness) and the rows inserted must be identical, whatever the
object holds: headers that change the layout mid-file, lines the compiled core defers (JSON v2,
IPv6, broken escapes), failures, over-long lines, a window, a gzip cut short.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.backfill.encode import ArrowRows
from processor.backfill.manifest import ManifestEntry
from processor.backfill.run import Window, _Decoders, decode_object
from processor.backfill.sources import LogObject
from processor.backfill.stream import ChunkStream
from processor.core import native
from processor.core.hit import Hit
from processor.core.reader import MAX_LINE
from tests.backfill.logs import CTX, SECRET, START_MS
from tests.core.render import Req, standard_header, standard_line

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not native.AVAILABLE, reason="the compiled core is built by make install"),
]

_OLD_HEADER = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem "
_OLD_HEADER += "sc-status cs(Referer) cs(User-Agent) cs-uri-query"


# Event times the window refuses (issue #14.7): the core decodes them, the reference must decide.
_TS = {
    "ancient": 978_307_200_000,
    "old404": 978_307_200_000,
    "future": 10_413_792_000_000,
}  # 2001-01-01, 2300-01-01


def _line(i: int, kind: str) -> str:
    req = Req(
        request_id=f"req-{i}",
        ts_ms=_TS.get(kind, START_MS + i * 61_000),
        sid=f"s{i % 7}",
        cid="al\npha" if kind == "newline" else "alpha",
        scheme="v2" if kind in ("v2", "newline") and i % 2 else "v1",
        cat="news",
        secret=SECRET,
        ip="2001:db8::7" if kind == "ipv6" else "192.0.2.10",
        method="POST" if kind == "post" else "GET",
        status=404 if kind in ("404", "old404") else 200,
        path="/other.png" if kind == "other" else "/o.gif",
    )
    line = standard_line(req)
    if kind == "broken":
        return line.replace("\t", " ", 3)[:40]
    if kind == "spaces":  # no TAB: the core defers, the reference splits on spaces (a hit)
        return line.replace("\t", " ")
    if kind == "json":
        return '{"date": "2025-11-24", "cs-uri-stem": "/o.gif"}'
    if kind == "header":
        return _OLD_HEADER if i % 2 else standard_header()
    return line


_kinds = st.sampled_from(
    [
        *("ok", "ok", "ok", "ipv6", "post", "404", "other", "broken", "json", "spaces"),
        *("ancient", "old404", "future", "v2", "newline"),
    ]
)


def _run(
    objects: list[bytes], window: Window, columns: bool
) -> list[tuple[ManifestEntry, list[str]]]:
    """Each object decoded in turn by one set of decoders (their state carries over, as in a
    run): its manifest entry and the rows it delivered."""
    decoders = _Decoders(CTX)
    encode = ArrowRows()
    out = []
    for n, data in enumerate(objects):
        obj = LogObject(f"/logs/{n}.gz", "etag", len(data), "standard", None, None)
        rows: list[Any] = []

        def emit(hits: list[Hit], rows: list[Any] = rows) -> None:
            rows.append(encode(hits))

        stream = ChunkStream(lambda data=data: io.BytesIO(data))
        try:
            entry = decode_object(
                obj, stream, decoders, "direct", emit, None, window,
                rows.append if columns else None,
            )  # fmt: skip
        finally:
            stream.close()
        table = pa.Table.from_batches(rows, schema=rows[0].schema) if rows else None
        out.append((entry, sorted(map(repr, table.to_pylist())) if table else []))
    return out


NO_WINDOW = Window()


def _same(*objects: bytes, window: Window = NO_WINDOW) -> ManifestEntry:
    by_hits = _run(list(objects), window, columns=False)
    by_columns = _run(list(objects), window, columns=True)
    assert by_columns == by_hits
    return by_hits[-1][0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_kinds, st.booleans()), min_size=1, max_size=40),
    st.one_of(st.none(), st.integers(0, 40)),
    st.one_of(st.none(), st.integers(0, 40)),
)
def test_columns_equal_hits(
    kinds: list[tuple[str, bool]], since: int | None, until: int | None
) -> None:
    lines = [standard_header()]
    for i, (kind, header_before) in enumerate(kinds):
        if header_before and i % 9 == 0:
            lines.append(_line(i, "header"))
        lines.append(_line(i, kind))
    at = [None if m is None else datetime.fromtimestamp((START_MS + m * 61_000) / 1000, UTC)
          for m in (since, until)]  # fmt: skip
    entry = _same(gzip.compress(("\n".join(lines) + "\n").encode()), window=Window(at[0], at[1]))
    spaced = sum(kind == "spaces" for kind, _ in kinds)
    assert entry.hits + entry.outside_window >= spaced  # deferred lines that are hits count
    implausible = sum(kind in _TS for kind, _ in kinds)
    assert entry.failures["implausible_timestamp"] == implausible


def test_columns_count_over_long_lines_and_a_cut_gzip_like_hits() -> None:
    lines = [standard_header()] + [_line(i, "ok") for i in range(3000)]
    lines.insert(1500, "x" * (MAX_LINE + 10))
    lines.insert(2, "broken line")
    entry = _same(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert (entry.lines, entry.hits, dict(entry.failures)) == (
        3005,
        3000,
        {"line_too_long": 1, "field_count": 1},
    )
    assert entry.examples == ["field_count@5", "line_too_long@1504"]
    cut = gzip.compress(("\n".join(lines[:2500]) + "\n").encode(), 1)
    cut_entry = _same(cut[: len(cut) * 3 // 4])
    assert not cut_entry.complete and 0 < cut_entry.hits < 2500


def test_columns_over_many_batches_and_objects_in_a_row() -> None:
    """More hits than one hand-over (``BATCH``), and a second object decoded by the parser that
    ended the first under another header (each object starts from today's layout again)."""
    big = [standard_header()] + [_line(i, "ok" if i % 50 else "spaces") for i in range(25_000)]
    old = [standard_header(), *(_line(i, "ok") for i in range(10)), _OLD_HEADER]
    headless = [_line(i, "ok") for i in range(100, 120)]
    entry = _same(
        gzip.compress(("\n".join(big) + "\n").encode()),
        gzip.compress(("\n".join(old) + "\n").encode()),
        gzip.compress(("\n".join(headless) + "\n").encode()),
    )
    assert (entry.lines, entry.hits, entry.bad_lines) == (20, 20, 0)
