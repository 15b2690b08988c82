"""`opens forget` sticks, on the real ClickHouse engine (chDB): later writes of a forgotten
subscriber's hits — replays, re-run backfills, a batch built before the forget — are dropped
inside the INSERT, and every view equals the truth without them."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.analytics.forget import (
    forget_subscriber,
    is_suppressed,
    unforget_subscriber,
    wait_for_inserts,
)
from processor.backfill.encode import ArrowRows
from processor.backfill.sinks import DirectDelivery
from processor.core.hit import Hit
from processor.errors import OpensError
from processor.sinks.clickhouse.schema import apply_migrations
from processor.suppression import load_suppressed, split_suppressed
from tests.factories import check, generate, make_hit, write

pytestmark = pytest.mark.integration


def _rows_of(client: Any, db: str, sid: str) -> tuple[int, int]:
    p = {"db": db, "sid": sid}
    return (
        int(client.command("SELECT count() FROM {db:Identifier}.hits WHERE sid = {sid:String}", p)),
        int(
            client.command(
                "SELECT count() FROM {db:Identifier}.first_opens WHERE sid = {sid:String}", p
            )
        ),
    )


def _victims(hits: list[Hit], n: int) -> set[str]:
    """The ``n`` subscribers with the most hits (so forgetting them moves many numbers)."""
    count: dict[str, int] = {}
    for h in hits:
        count[h.sid or ""] = count.get(h.sid or "", 0) + 1
    return set(sorted(count, key=lambda s: (-count[s], s))[:n])


def test_rewrites_after_forget_change_nothing_until_unforget(
    chdb_client: Any, ch_database: str
) -> None:
    apply_migrations(chdb_client, ch_database)
    hits = generate(random.Random(14), 600, ["welcome", "digest", "promo"])
    write(chdb_client, ch_database, hits)
    victim = next(iter(_victims(hits, 1)))
    rest = [h for h in hits if h.sid != victim]
    done = forget_subscriber(chdb_client, ch_database, victim)
    assert done.hits == len({h.request_id for h in hits if h.sid == victim}) > 0
    assert is_suppressed(chdb_client, ch_database, victim)
    check(chdb_client, ch_database, rest)

    # A replay through the worker's sink, a --direct backfill --force of the same hits: the
    # engine drops the victim's rows; nothing else moves either (the rest are duplicates).
    write(chdb_client, ch_database, hits, hits[::2])
    delivery = DirectDelivery(chdb_client, ch_database)
    delivery.send(ArrowRows()(hits))
    delivery.settle()
    assert delivery.suppressed == sum(h.sid == victim for h in hits)
    assert _rows_of(chdb_client, ch_database, victim) == (0, 0)
    check(chdb_client, ch_database, rest)

    # Only an explicit undo lets their hits in again; what was erased stays erased until then.
    assert unforget_subscriber(chdb_client, ch_database, victim)
    assert not unforget_subscriber(chdb_client, ch_database, victim)
    assert load_suppressed(chdb_client, ch_database) == frozenset()
    write(chdb_client, ch_database, hits)
    check(chdb_client, ch_database, hits)
    # Forgetting again works after an undo (the newest change wins).
    forget_subscriber(chdb_client, ch_database, victim)
    write(chdb_client, ch_database, hits)
    check(chdb_client, ch_database, rest)


def test_a_batch_built_before_forget_and_inserted_after_it_is_dropped(
    chdb_client: Any, ch_database: str
) -> None:
    """The race of the brief: a writer checked (or never checked) the list, then forget ran,
    then the writer's insert arrived. The view reads the list inside that insert."""
    apply_migrations(chdb_client, ch_database)
    hits = generate(random.Random(15), 500, ["race"])
    write(chdb_client, ch_database, hits[:250])
    victims = _victims(hits, 3)
    held = hits[250:]  # built (and "checked") while the list was empty
    assert split_suppressed(held, load_suppressed(chdb_client, ch_database)).dropped == 0
    for sid in sorted(victims):
        forget_subscriber(chdb_client, ch_database, sid)
    write(chdb_client, ch_database, held)
    for sid in victims:
        assert _rows_of(chdb_client, ch_database, sid) == (0, 0)
    check(chdb_client, ch_database, [h for h in hits if h.sid not in victims])


def test_forget_while_an_insert_is_running_leaves_nothing(
    chdb_client: Any, ch_database: str
) -> None:
    """An INSERT of the subscriber already running when forget is called: none of its rows
    survive. (chDB runs one query at a time, so here forget starts after it; the waiting
    itself, needed on a server, is checked against a scripted ``system.processes`` below.)"""
    apply_migrations(chdb_client, ch_database)
    victim = "slow-victim"
    write(
        chdb_client, ch_database, [make_hit(i, sid=victim, request_id=f"old-{i}") for i in range(3)]
    )
    slow = (
        f"INSERT INTO {ch_database}.hits_ingest (request_id, ts, source, sid, cid, signature, "
        "method, status) SELECT concat('slow-', toString(number)), "
        "toDateTime64(1764000000 + number, 3, 'UTC'), 'standard', "
        f"'{victim}', 'c0', 'missing', 'GET', 200 FROM numbers(30) "
        "WHERE sleepEachRow(0.05) = 0 SETTINGS max_block_size = 5"
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            chdb_client.command(slow)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    started = time.monotonic()
    while time.monotonic() - started < 5 and not wait_for_inserts_seen(chdb_client):
        time.sleep(0.02)
    done = forget_subscriber(chdb_client, ch_database, victim)
    thread.join(30)
    assert not errors, errors
    assert done.hits == 33
    assert _rows_of(chdb_client, ch_database, victim) == (0, 0)
    assert wait_for_inserts(chdb_client, timeout=1) == 0


def wait_for_inserts_seen(client: Any) -> bool:
    return bool(client.command("SELECT count() FROM system.processes WHERE query_kind = 'Insert'"))


@settings(max_examples=200, deadline=None)
@given(
    sids=st.lists(st.sampled_from(["a", "b", "c", "d", "", "é"]), max_size=40),
    listed=st.sets(st.sampled_from(["a", "c", "", "x"])),
)
def test_split_keeps_order_and_drops_exactly_the_listed(sids: list[str], listed: set[str]) -> None:
    hits = [make_hit(i, sid=s) for i, s in enumerate(sids)]
    out = split_suppressed(hits, listed)
    assert out.kept == [h for h in hits if (h.sid or "") not in listed]
    assert out.dropped == len(hits) - len(out.kept)
    assert out.sids == {s for s in sids if s in listed}


class _Processes:
    """Answers ``SELECT query_id FROM system.processes`` from a script: one list per call."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def query(self, sql: str) -> Any:
        assert "system.processes" in sql and "Insert" in sql
        self.calls += 1
        ids = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return type("R", (), {"result_rows": [(i,) for i in ids]})()


def test_wait_for_inserts_waits_only_for_those_running_at_the_start() -> None:
    # q1 and q2 run when forget's row lands; q3 starts later (it reads the list: no waiting).
    procs = _Processes(["q1", "q2"], ["q1", "q2", "q3"], ["q2", "q3"], ["q3"], ["q3"])
    assert wait_for_inserts(procs, timeout=5, poll=0) == 2
    assert procs.calls == 4  # stopped as soon as q1 and q2 were gone, q3 still running
    assert wait_for_inserts(_Processes([]), timeout=5, poll=0) == 0
    with pytest.raises(OpensError, match="still running"):
        wait_for_inserts(_Processes(["stuck"]), timeout=0.05, poll=0.01)
