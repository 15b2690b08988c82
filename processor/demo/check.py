"""Compare what ClickHouse reports with the traffic's truth, view by view."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from processor.traffic.truth import SUMMARY_KEYS, Expected

__all__ = ["Mismatch", "compare", "counts"]


@dataclass(frozen=True)
class Mismatch:
    view: str
    key: str
    expected: int
    got: int

    def __str__(self) -> str:
        return f"{self.view} {self.key}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True)
class Counts:
    summary: dict[str, dict[str, int]]
    by_client: Counter[tuple[str, str]]
    by_country: Counter[tuple[str, str]]


def counts(client: Any, database: str) -> Counts:
    """The numbers the views report (exact counts only; rates follow from them)."""
    params = {"db": database}
    cols = ", ".join(SUMMARY_KEYS)
    rows = client.query(
        f"SELECT campaign, {cols} FROM {{db:Identifier}}.campaign_summary",  # noqa: S608 - fixed names
        parameters=params,
    ).result_rows
    summary = {r[0]: dict(zip(SUMMARY_KEYS, map(int, r[1:]), strict=True)) for r in rows}
    by_client: Counter[tuple[str, str]] = Counter()
    for cid, name, n in client.query(
        "SELECT campaign, client, sum(opens) FROM {db:Identifier}.opens_by_client "
        "GROUP BY campaign, client",
        parameters=params,
    ).result_rows:
        by_client[(cid, name)] += int(n)
    by_country: Counter[tuple[str, str]] = Counter()
    for cid, country, n in client.query(
        "SELECT campaign, country, sum(opens) FROM {db:Identifier}.opens_by_country "
        "GROUP BY campaign, country",
        parameters=params,
    ).result_rows:
        by_country[(cid, country)] += int(n)
    return Counts(summary, +by_client, +by_country)


def compare(exp: Expected, got: Counts) -> list[Mismatch]:
    """Every difference; an empty list means the pipeline reported exactly the truth."""
    out: list[Mismatch] = []
    for cid in sorted(set(exp.summary) | set(got.summary)):
        want, have = exp.summary.get(cid, {}), got.summary.get(cid, {})
        out += [
            Mismatch("campaign_summary", f"{cid}.{k}", want.get(k, 0), have.get(k, 0))
            for k in SUMMARY_KEYS
            if want.get(k, 0) != have.get(k, 0)
        ]
    for view, want_c, have_c in (
        ("opens_by_client", exp.by_client, got.by_client),
        ("opens_by_country", exp.by_country, got.by_country),
    ):
        for key in sorted(set(want_c) | set(have_c)):
            if want_c[key] != have_c[key]:
                out.append(Mismatch(view, "/".join(key) or "-", want_c[key], have_c[key]))
    return out


def overcounted(exp: Expected, got: Counts) -> bool:
    """Counts only grow while the pipeline catches up: above the truth means double counting."""
    return any(
        got.summary.get(cid, {}).get(k, 0) > want[k]
        for cid, want in exp.summary.items()
        for k in ("opens", "machine_opens", "invalid_hits", "unique_opens")
    )
