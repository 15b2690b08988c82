"""The store agent's own offsets (processor.offsets): every message processed exactly once
however the consumer skips, repeats or reorders deliveries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.offsets import REWIND_SECONDS, Rewinds, offset_key, plan, subscriber_key

pytestmark = pytest.mark.unit


@given(st.lists(st.integers(0, 60), max_size=40), st.integers(0, 60))
def test_plan_keeps_exactly_the_contiguous_run_from_the_expected_offset(
    offsets: list[int], expected: int
) -> None:
    step = plan(offsets, expected)
    kept = [offsets[i] for i in step.keep]
    assert kept == list(range(expected, step.next_offset))
    assert step.replayed == sum(1 for o in offsets if o < expected) + (
        len([o for o in offsets if expected <= o < step.next_offset]) - len(kept)
    )
    if step.hole is None:
        assert all(o < step.next_offset for o in offsets)
    else:
        assert step.hole == step.next_offset
        assert step.hole not in offsets
        assert any(o > step.hole for o in offsets)


def test_plan_examples() -> None:
    # The CI failure: partition taken over, messages 4..8 skipped by Faust, 9..11 delivered.
    assert plan([9, 10, 11], 4).hole == 4
    assert plan([9, 10, 11], 4).keep == []
    # After the seek back: 4..11 arrive, stale 10 and 11 repeated among them.
    step = plan([4, 5, 6, 7, 8, 9, 10, 11, 10, 11], 4)
    assert step.keep == [0, 1, 2, 3, 4, 5, 6, 7] and step.replayed == 2 and step.hole is None
    assert step.next_offset == 12
    # Out-of-order delivery inside a batch is fine.
    assert plan([2, 0, 1], 0).next_offset == 3


@settings(max_examples=300)
@given(
    st.integers(1, 80),
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 12), st.integers(0, 3), st.booleans()),
        max_size=60,
    ),
)
def test_simulated_consumer_processes_every_offset_exactly_once(
    n: int, steps: list[tuple[int, int, int, bool]]
) -> None:
    """A consumer that, batch after batch, may skip messages (Faust's generation/flow skips),
    repeat old ones (a seek to an older commit) or deliver normally; the worker seeks back
    whenever plan() reports a hole, or when nothing arrives while messages lie past its record
    (OffsetGuard.check_idle), and a seek may be undone (records fetched before it keep coming
    and move the read position on). Whatever happened, each offset is processed once."""
    processed: list[int] = []
    expected = 0
    position = 0  # where the consumer fetches next
    calm = [(0, n, 0, False)] * (n + 1)  # then a calm tail, where every seek holds
    for kind, size, jump, seek_undone in steps + calm:
        if expected >= n:
            break
        if kind == 1:  # skip `jump` messages: fetched, acked, never delivered
            position = min(n, position + jump + 1)
        elif kind == 2:  # a rebalance seeks to an older offset
            position = max(0, position - jump)
        batch = list(range(position, min(n, position + size)))
        position += len(batch)
        if not batch and expected < n:
            if not seek_undone:
                position = expected  # the idle check: messages past our record, none delivered
            continue
        step = plan(batch, expected)
        processed += [batch[i] for i in step.keep]
        expected = step.next_offset
        if step.hole is not None and not seek_undone:
            position = step.hole  # the worker's seek
    assert processed == list(range(n))


def test_rewinds_are_spaced_and_never_give_up() -> None:
    r = Rewinds()
    t = 100.0
    assert r.due(7, t)
    assert not r.due(7, t + 0.1)  # stale events still arriving: no second seek yet
    for i in range(1, 50):
        assert r.due(7, t + i * REWIND_SECONDS)  # a hole is sought back for as long as it lasts
    assert r.attempts == 50
    assert r.due(9, t + 0.2)  # a new hole starts at once, with a new count
    assert r.attempts == 1


@given(st.text(), st.integers(0, 1 << 20))
def test_no_subscriber_key_is_an_offset_key(sid: str, partition: int) -> None:
    assert subscriber_key(sid) != offset_key(partition)
    assert offset_key(partition) != offset_key(partition + 1)
