"""The worker's counting step: duplicates dropped, first opens found, state stored after."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.hit import Hit
from processor.dedupe import HOUR_MS, SubscriberState, admit
from tests.factories import make_hit

pytestmark = pytest.mark.unit

BASE = 1_764_000_000_000


def run(
    batches: list[list[Hit]], horizon_hours: float = 48
) -> tuple[list[Hit], int, dict[tuple[str, str], int], dict[str, SubscriberState]]:
    """Feed batches one after another the way the worker does; return what came out."""
    store: dict[str, SubscriberState] = {}
    fresh: list[Hit] = []
    dups = 0
    firsts: dict[tuple[str, str], int] = {}
    for batch in batches:
        out = admit(batch, store, horizon_hours)
        fresh += out.fresh
        dups += out.duplicates
        for f in out.first_opens:
            key = (f.cid, f.sid)
            firsts[key] = min(firsts.get(key, f.ts_ms), f.ts_ms)
        store.update(out.states)
    return fresh, dups, firsts, store


hit_specs = st.lists(
    st.tuples(
        st.integers(0, 30),  # request id (small range: many duplicates)
        st.integers(0, 4),  # subscriber
        st.integers(0, 2),  # campaign
        st.integers(0, 40 * HOUR_MS),  # event time within the horizon
        st.sampled_from(["valid", "missing", "invalid"]),
    ),
    max_size=80,
)


def hits_from(specs: list[tuple[int, int, int, int, str]]) -> list[Hit]:
    # One request id always belongs to one request: its subscriber/campaign/time derive from it.
    out = []
    for rid, *_ in specs:
        spec = next(s for s in specs if s[0] == rid)
        _, sid, cid, ts, sig = spec
        out.append(
            make_hit(rid, request_id=f"r{rid}", sid=f"s{sid}", cid=f"c{cid}", ts_ms=BASE + ts)
        )
        out[-1] = out[-1].__class__(**{**out[-1].to_wire(), "signature": sig})
    return out


@settings(max_examples=300, deadline=None)
@given(hit_specs, st.lists(st.integers(1, 10), max_size=20))
def test_each_request_once_and_first_open_is_the_earliest(
    specs: list[tuple[int, int, int, int, str]], cuts: list[int]
) -> None:
    hits = hits_from(specs)
    batches, i = [], 0
    for c in cuts:
        batches.append(hits[i : i + c])
        i += c
    batches.append(hits[i:])

    fresh, dups, firsts, _ = run(batches)

    distinct = {h.request_id: h for h in hits}
    assert sorted(h.request_id for h in fresh) == sorted(distinct)
    assert dups == len(hits) - len(distinct)
    truth: dict[tuple[str, str], int] = {}
    for h in distinct.values():
        if h.signature != "invalid":
            key = (h.cid or "", h.sid or "")
            truth[key] = min(truth.get(key, h.ts_ms), h.ts_ms)
    assert firsts == truth


def test_the_input_state_is_not_modified_until_the_caller_stores_it() -> None:
    store = {"s1": SubscriberState({f"{BASE}:r0": BASE}, {"c0": BASE})}
    out = admit([make_hit(1, request_id="r1", sid="s1", cid="c0", ts_ms=BASE - 5)], store, 48)
    assert store["s1"].seen == {f"{BASE}:r0": BASE}
    assert store["s1"].first == {"c0": BASE}
    assert out.states["s1"].seen == {f"{BASE}:r0": BASE, f"{BASE - 5}:r1": BASE - 5}
    # An earlier open for a known (campaign, subscriber) is announced again, as a correction.
    assert [(f.cid, f.sid, f.ts_ms) for f in out.first_opens] == [("c0", "s1", BASE - 5)]


def test_request_ids_older_than_the_horizon_are_forgotten_in_event_time() -> None:
    old = make_hit(1, request_id="old", sid="s", ts_ms=BASE)
    late = make_hit(2, request_id="late", sid="s", ts_ms=BASE + 47 * HOUR_MS)
    newer = make_hit(3, request_id="newer", sid="s", ts_ms=BASE + 49 * HOUR_MS)
    _, dups, _, store = run([[old], [late], [old]])
    assert dups == 1  # 47 h apart: still recognised (standard logs arrive up to a day late)
    _, dups, _, store = run([[old], [newer], [old]])
    assert f"{BASE}:old" not in store["s"].seen and dups == 0  # past 48 h: forgotten, rewritten


def test_state_round_trips_through_json() -> None:
    st_ = SubscriberState({"a": 1, "b": 2}, {"c": 3})
    assert SubscriberState.from_json(st_.to_json()) == st_
    assert SubscriberState.from_json(None) == SubscriberState()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 999)), min_size=1, max_size=40))
def test_two_paths_with_different_precision_reach_the_same_numbers_in_any_order(
    specs: list[tuple[int, int]],
) -> None:
    """The standard log keeps whole seconds, the real-time log milliseconds: both copies of a
    request go on, so the earliest time (what ClickHouse's min state keeps) is the same
    whichever path came first, and each copy is written once however often it repeats."""
    realtime = [
        make_hit(rid, request_id=f"r{rid}", sid="s", cid="c", ts_ms=BASE + rid * 1000 + ms)
        for rid, ms in specs
    ]
    standard = [h.__class__(**{**h.to_wire(), "ts_ms": h.ts_ms - h.ts_ms % 1000}) for h in realtime]
    for order in (realtime + standard + realtime, standard + realtime + standard):
        fresh, _, firsts, _ = run([order])
        assert sorted((h.request_id, h.ts_ms) for h in fresh) == sorted(
            {(h.request_id, h.ts_ms) for h in realtime + standard}
        )
        assert firsts == {("c", "s"): min(h.ts_ms for h in standard)}
