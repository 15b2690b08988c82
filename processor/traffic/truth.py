"""The numbers the pipeline must report, computed from what was sent and what the edge answered.

Nothing here reads the pipeline or runs its decoders: a request is an open when the generator
sent a pixel URL with GET or HEAD and the edge answered 200/206/304 (DESIGN §2); whether it is a
machine open and which client it is come from the generator's own description of the fetcher.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from processor.traffic.clients import FETCHERS
from processor.traffic.mix import TrafficPlan
from processor.traffic.sent import Sent

__all__ = ["SUMMARY_KEYS", "Expected", "expected"]

SUMMARY_KEYS = (
    "sends",
    "opens",
    "unique_opens",
    "human_unique_opens",
    "machine_opens",
    "invalid_hits",
)
HIT_STATUSES = frozenset({200, 206, 304})


@dataclass
class Expected:
    """Per campaign: the ``campaign_summary`` counts, opens per client and per country."""

    summary: dict[str, dict[str, int]] = field(default_factory=dict)
    by_client: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_country: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: int = 0
    hits: int = 0


def expected(
    plan: TrafficPlan, sent: Iterable[Sent], realtime_lost: Iterable[str] = ()
) -> Expected:
    """``realtime_lost``: request ids whose real-time record never reached Kinesis; only the
    legacy standard log has them, and it carries no country (they count under ``''``)."""
    lost = set(realtime_lost)
    out = Expected()
    opens: Counter[str] = Counter()
    machine: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    uniq: dict[str, set[str]] = defaultdict(set)
    human: dict[str, set[str]] = defaultdict(set)
    for s in sent:
        out.requests += 1
        p = s.planned
        if p.sid is None or p.cid is None or p.method not in ("GET", "HEAD"):
            continue
        if s.status not in HIT_STATUSES:
            continue
        out.hits += 1
        if p.forged:
            invalid[p.cid] += 1
            continue
        fetcher = FETCHERS[p.fetcher]
        opens[p.cid] += 1
        uniq[p.cid].add(p.sid)
        if fetcher.machine:
            machine[p.cid] += 1
        else:
            human[p.cid].add(p.sid)
        out.by_client[(p.cid, fetcher.client)] += 1
        out.by_country[(p.cid, "" if s.request_id in lost else p.country)] += 1
    for cid, sends in plan.sends.items():
        out.summary[cid] = {
            "sends": sends,
            "opens": opens[cid],
            "unique_opens": len(uniq[cid]),
            "human_unique_opens": len(human[cid]),
            "machine_opens": machine[cid],
            "invalid_hits": invalid[cid],
        }
    return out
