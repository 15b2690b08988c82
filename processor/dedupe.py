"""Per-subscriber dedupe and first opens: the pure counting step the worker runs before the sink.

State is kept per subscriber id because the hits topic is partitioned by subscriber, so one
worker sees all of a subscriber's hits and the state never needs a cross-partition lookup. For
each subscriber it holds

- ``seen``: every (request id, event time) admitted within the horizon (≥ 48 h, so a standard
  log that arrives a day after the real-time record is still recognised), and
- ``first``: campaign → event time of the earliest open admitted for that campaign.

The horizon is measured in *event time* from the newest hit of that subscriber, never in
processing time, so a replay of old data behaves exactly as the first pass did.

A duplicate is the same request with the same event time: a Kinesis redelivery, a replay, a
re-run backfill. The same request seen by both paths can carry two times (the standard log
keeps whole seconds, the real-time log milliseconds); both copies go on to ClickHouse, whose
rows are keyed by request id and whose first/last-open states take the min/max over every
copy, so the numbers never depend on which path arrived first.

This layer is an early filter, not the counting guarantee: ClickHouse keys every row by request
id and keeps aggregates as set states, so anything that slips through here (a duplicate older
than the horizon, a replay after a crash) still changes no number (DESIGN §1). What this layer
adds is fewer writes and a first-open event stream for downstream consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processor.core.hit import Hit

HOUR_MS = 3_600_000


@dataclass
class SubscriberState:
    seen: dict[str, int] = field(default_factory=dict)  # seen_key(hit) → event time
    first: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"s": self.seen, "f": self.first}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> SubscriberState:
        if not value:
            return cls()
        return cls(dict(value.get("s") or {}), dict(value.get("f") or {}))

    def prune(self, horizon_ms: int) -> None:
        """Forget requests older than the horizon before the newest one seen."""
        if not self.seen:
            return
        cutoff = max(self.seen.values()) - horizon_ms
        if min(self.seen.values()) < cutoff:
            self.seen = {k: ts for k, ts in self.seen.items() if ts >= cutoff}


def seen_key(hit: Hit) -> str:
    """One key per (request id, event time): digits then ``:``, so it is never ambiguous."""
    return f"{hit.ts_ms}:{hit.request_id}"


@dataclass(frozen=True)
class FirstOpen:
    """An open that is (so far) the earliest of its (campaign, subscriber).

    Emitted again only when an earlier open turns up later (late standard logs), so a consumer
    that keeps the minimum ``ts_ms`` per key always holds the right answer.
    """

    cid: str
    sid: str
    ts_ms: int
    request_id: str
    machine: str | None
    client: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "sid": self.sid,
            "ts_ms": self.ts_ms,
            "request_id": self.request_id,
            "machine": self.machine,
            "client": self.client,
        }


@dataclass
class Admission:
    """What one batch does: hits to write, duplicates dropped, first opens, new states."""

    fresh: list[Hit] = field(default_factory=list)
    duplicates: int = 0
    first_opens: list[FirstOpen] = field(default_factory=list)
    states: dict[str, SubscriberState] = field(default_factory=dict)


def admit(
    hits: Iterable[Hit],
    state_of: Mapping[str, SubscriberState],
    horizon_hours: float,
) -> Admission:
    """Split ``hits`` into fresh ones and duplicates, and find new first opens.

    ``state_of`` maps a subscriber id to its current state (missing = never seen); it is not
    modified — the updated states are returned, for the caller to store only after the fresh
    hits are safely written (so stored state never claims a hit that is not in ClickHouse).
    """
    horizon_ms = int(horizon_hours * HOUR_MS)
    out = Admission()
    states = out.states
    firsts: dict[tuple[str, str], FirstOpen] = {}
    for hit in hits:
        sid = hit.sid or ""
        st = states.get(sid)
        if st is None:
            prior = state_of.get(sid)
            st = states[sid] = (
                SubscriberState(dict(prior.seen), dict(prior.first)) if prior else SubscriberState()
            )
        key = seen_key(hit)
        if key in st.seen:
            out.duplicates += 1
            continue
        st.seen[key] = hit.ts_ms
        out.fresh.append(hit)
        if hit.is_open and hit.cid:
            known = st.first.get(hit.cid)
            if known is None or hit.ts_ms < known:
                st.first[hit.cid] = hit.ts_ms
                firsts[hit.cid, sid] = FirstOpen(
                    hit.cid, sid, hit.ts_ms, hit.request_id, hit.machine, hit.client
                )
    for st in states.values():
        st.prune(horizon_ms)
    out.first_opens = list(firsts.values())  # one event per key and batch: the earliest
    return out
