"""The labelled machine-open corpus (``machine_opens.csv``, built by ``build.py``) and how it
is run: each row becomes a real-time log record (the project's fields plus ``cs-headers``) and
goes through the real decoder, so the corpus checks what ``opens parse`` and the worker do."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.realtime import RealtimeDecoder
from processor.edge.logged import LoggedRequest
from processor.edge.render import realtime_record

CORPUS = Path(__file__).with_name("machine_opens.csv")
FIELDS = (*DEFAULT_REALTIME_FIELDS, "cs-headers")
CTX = DecodeContext(ip_privacy="full")

Label = tuple[str, str, str]  # (proxy, machine or "", certainty)


@dataclass(frozen=True, slots=True)
class Row:
    user_agent: str
    ip: str
    asn: str
    method: str
    headers: str
    referer: str
    proxy: str
    machine: str
    certainty: str
    source: str

    @property
    def expected(self) -> Label:
        return (self.proxy, self.machine, self.certainty)


def load(path: Path = CORPUS) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [Row(**r) for r in csv.DictReader(fh)]


def record(row: Row, i: int, fields: tuple[str, ...] = FIELDS) -> bytes:
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (h.partition(":") for h in row.headers.split(" | ") if h)
    )
    req = LoggedRequest(
        request_id=f"corpus{i:05d}==",
        ts_ms=1_764_000_000_000 + i,
        method=row.method,
        path="/o.gif",
        query=f"sid=s{i}&cid=corpus",
        status=200,
        ip=row.ip,
        user_agent=row.user_agent,
        referer=row.referer,
        asn=row.asn,
        headers=(("Host", "px.example.com"), ("User-Agent", row.user_agent), *headers),
    )
    return realtime_record(req, fields)


def classify(rows: Iterable[Row], decoder: RealtimeDecoder) -> list[Label]:
    out: list[Label] = []
    for i, row in enumerate(rows):
        hit = decoder.decode(record(row, i))
        assert isinstance(hit, Hit), hit
        out.append((hit.proxy, hit.machine or "", hit.certainty))
    return out


def scores(
    rows: list[Row], got: list[Label], axis: Callable[[Label], str]
) -> dict[str, tuple[int, int, int]]:
    """``{class: (true positives, predicted, actual)}`` on one axis of the labels."""
    tp: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    for row, label in zip(rows, got, strict=True):
        want, have = axis(row.expected), axis(label)
        actual[want] += 1
        predicted[have] += 1
        tp[want] += want == have
    return {k: (tp[k], predicted[k], actual[k]) for k in sorted(set(actual) | set(predicted))}
