"""`opens sends load`: a file replaces all send rows of the campaigns it lists, on the real
ClickHouse engine (chDB); duplicate keys are an error and load nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.analytics.sends import (
    DuplicateSendKeys,
    current_sends,
    load_sends,
    next_loaded_at,
    read_sends,
)
from processor.errors import OpensError
from processor.sinks.clickhouse.schema import apply_migrations

pytestmark = pytest.mark.integration

HEADER = "campaign,category,sent_at,sends"


def sends_csv(directory: Path, rows: list[str], name: str = "sends.csv") -> Path:
    p = directory / name
    p.write_text(HEADER + "\n" + "".join(r + "\n" for r in rows))
    return p


def load(client: Any, db: str, directory: Path, rows: list[str], **kw: Any) -> Any:
    return load_sends(client, db, read_sends(sends_csv(directory, rows)), **kw)


def stored_rows(client: Any, db: str) -> int:
    return int(client.command("SELECT count() FROM {db:Identifier}.sends", {"db": db}))


@pytest.fixture
def sends_db(chdb_client: Any, ch_database: str) -> str:
    apply_migrations(chdb_client, ch_database)
    return ch_database


def test_duplicate_keys_name_their_lines_and_load_nothing(
    chdb_client: Any, sends_db: str, tmp_path: Path
) -> None:
    f = sends_csv(
        tmp_path,
        [
            "promo,,2026-01-01T00:00:00Z,10",  # line 2
            "promo,,2026-01-02T00:00:00Z,10",
            "promo,,2026-01-01T01:00:00+01:00,20",  # line 4: the same instant as line 2
            "news,a,2026-01-01,5",
            "",  # a blank line is skipped but still counted
            "news,a,2026-01-01T00:00:00.400Z,7",  # line 7: the column stores whole seconds
            "promo,,2026-01-01 00:00:00,30",  # line 8: naive is UTC
        ],
    )
    with pytest.raises(DuplicateSendKeys) as err:
        read_sends(f)
    msg = err.value.one_line()
    assert "duplicate key (campaign=promo, category=, sent_at=2026-01-01T00:00:00Z)" in msg
    assert "on lines 2, 4 and 8" in msg
    assert "(campaign=news, category=a, sent_at=2026-01-01T00:00:00Z) on lines 5 and 7" in msg
    assert "nothing was loaded" in msg
    assert [d.lines for d in err.value.duplicates] == [(2, 4, 8), (5, 7)]
    assert isinstance(err.value, OpensError)
    assert stored_rows(chdb_client, sends_db) == 0


def test_many_duplicates_show_the_first_few_and_a_count(tmp_path: Path) -> None:
    rows = [f"c{i},,2026-01-01,1" for i in range(15)] * 2
    with pytest.raises(DuplicateSendKeys, match=r"lines 2 and 17; .* and 5 more duplicate key"):
        read_sends(sends_csv(tmp_path, rows))


@pytest.mark.parametrize(
    "row",
    [
        "welcome,news,not-a-date,10",
        "welcome,news,2026-11-20,-3",
        "welcome,news,2026-11-20,ten",
        "welcome,news,1969-12-31T23:59:59Z,1",
        "welcome,news,2026-11-20,18446744073709551616",
        ",news,2026-11-20,1",
    ],
)
def test_bad_row_names_its_line(tmp_path: Path, row: str) -> None:
    with pytest.raises(OpensError, match=r"sends.csv:3: bad row"):
        read_sends(sends_csv(tmp_path, ["ok,,2026-11-20,1", row]))


def test_empty_file_loads_nothing(chdb_client: Any, sends_db: str, tmp_path: Path) -> None:
    done = load(chdb_client, sends_db, tmp_path, [])
    assert (done.rows, done.campaigns, done.replaced_rows, done.loaded_at) == (0, 0, 0, None)
    assert stored_rows(chdb_client, sends_db) == 0


def test_reload_with_corrected_sent_at_and_category_replaces(
    chdb_client: Any, sends_db: str, tmp_path: Path
) -> None:
    first = load(
        chdb_client,
        sends_db,
        tmp_path,
        [
            "promo,,2026-01-01T00:00:00Z,100",
            "promo,,2026-01-01T12:00:00Z,50",
            "promo,x,2026-01-02T00:00:00Z,50",
            "news,,2026-01-01,7",
        ],
    )
    assert (first.rows, first.campaigns, first.replaced_rows) == (4, 2, 0)
    assert current_sends(chdb_client, sends_db) == {"promo": 200, "news": 7}
    # promo again: one sent_at corrected, one category corrected, one row gone; news not listed.
    second = load(
        chdb_client,
        sends_db,
        tmp_path,
        ["promo,,2026-01-01T06:00:00Z,100", "promo,y,2026-01-02T00:00:00Z,25"],
    )
    assert (second.rows, second.campaigns, second.replaced_rows) == (2, 1, 3)
    assert first.loaded_at is not None and second.loaded_at is not None
    assert second.loaded_at > first.loaded_at
    expected = {"promo": 125, "news": 7}
    assert current_sends(chdb_client, sends_db) == expected
    chdb_client.command(f"OPTIMIZE TABLE {sends_db}.sends FINAL")
    assert current_sends(chdb_client, sends_db) == expected
    # The same file once more replaces, never adds; the key that the first load shares with
    # it (promo,,01-01T00:00 is gone, promo,y,01-02 is new) merges away without changing a sum.
    third = load(
        chdb_client,
        sends_db,
        tmp_path,
        ["promo,,2026-01-01T06:00:00Z,100", "promo,y,2026-01-02T00:00:00Z,25"],
    )
    assert third.replaced_rows == 2
    chdb_client.command(f"OPTIMIZE TABLE {sends_db}.sends FINAL")
    assert current_sends(chdb_client, sends_db) == expected
    # The analysts' view reads the same rule (migration 0011's current_sends).
    rows = chdb_client.query(f"SELECT campaign, sends FROM {sends_db}.campaign_summary").result_rows
    assert dict(rows) == expected


def test_a_clock_that_went_backwards_still_replaces(
    chdb_client: Any, sends_db: str, tmp_path: Path
) -> None:
    t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = load(chdb_client, sends_db, tmp_path, ["promo,,2026-01-01,10"], now=t)
    assert first.loaded_at == t
    second = load(
        chdb_client, sends_db, tmp_path, ["promo,,2026-01-02,3"], now=t - timedelta(hours=5)
    )
    assert second.loaded_at == t + timedelta(milliseconds=1)
    assert current_sends(chdb_client, sends_db) == {"promo": 3}


def test_next_loaded_at() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    ms = int((now - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    assert next_loaded_at(now, None) == now.replace(microsecond=123000)
    assert next_loaded_at(now, ms - 10) == now.replace(microsecond=123000)
    assert next_loaded_at(now, ms) == now.replace(microsecond=124000)
    assert next_loaded_at(now, ms + 5000) == now.replace(microsecond=0) + timedelta(
        seconds=5, milliseconds=124
    )


# --- property: any sequence of valid files gives each campaign the totals of its last file ---

CAMPAIGNS = ["a", "b", "c"]
CATEGORIES = ["", "x"]
INSTANTS = [datetime(2026, 1, d, h, tzinfo=UTC) for d in (1, 2) for h in (0, 9)]


def _render(instant: datetime, style: int) -> str:
    """The same instant written the ways a sends file may write it."""
    if style == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return instant.strftime("%Y-%m-%d %H:%M:%S")  # naive: UTC
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat() + ".250+00:00"


file_rows = st.dictionaries(
    st.tuples(
        st.sampled_from(CAMPAIGNS),
        st.sampled_from(CATEGORIES),
        st.integers(0, len(INSTANTS) - 1),
    ),
    st.tuples(st.integers(0, 10**6), st.integers(0, 2)),
    max_size=8,
)
load_step = st.tuples(file_rows, st.integers(-3, 3), st.booleans())


@pytest.fixture(scope="module")
def property_db(chdb_client: Any) -> Iterator[str]:
    name = "t_sends_property"
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")
    chdb_client.command(f"CREATE DATABASE {name}")
    apply_migrations(chdb_client, name)
    yield name
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(load_step, min_size=1, max_size=4))
def test_each_campaign_has_the_totals_of_the_last_file_listing_it(
    chdb_client: Any, property_db: str, steps: list[tuple[dict[Any, Any], int, bool]]
) -> None:
    chdb_client.command(f"TRUNCATE TABLE {property_db}.sends")
    base = datetime(2026, 3, 1, tzinfo=UTC)
    expected: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (rows, clock_hours, optimize) in enumerate(steps):
            lines = [
                f"{c},{cat},{_render(INSTANTS[t], style)},{n}"
                for (c, cat, t), (n, style) in rows.items()
            ]
            f = sends_csv(Path(tmp), lines, name=f"load{i}.csv")
            # The clock jumps back and forth; a later load must win all the same.
            load_sends(
                chdb_client, property_db, read_sends(f), now=base + timedelta(hours=clock_hours)
            )
            totals: dict[str, int] = {}
            for (c, _, _), (n, _) in rows.items():
                totals[c] = totals.get(c, 0) + n
            expected.update(totals)
            if optimize:
                chdb_client.command(f"OPTIMIZE TABLE {property_db}.sends FINAL")
            assert current_sends(chdb_client, property_db) == expected
    chdb_client.command(f"OPTIMIZE TABLE {property_db}.sends FINAL")
    assert current_sends(chdb_client, property_db) == expected


# --- the command line, in a fresh process on the embedded default ---


def opens(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "COLUMNS": "200"},
    )


def test_cli_says_what_it_did(tmp_path: Path) -> None:
    env = {"OPENS_DATA_DIR": str(tmp_path)}
    empty = sends_csv(tmp_path, [], name="empty.csv")
    out = opens(env, "sends", "load", str(empty))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{empty} has no rows: nothing loaded"
    assert not (tmp_path / "clickhouse").exists()  # not even a connection

    dup = sends_csv(tmp_path, ["promo,,2026-01-01,1", "promo,,2026-01-01T00:00:00Z,2"], "dup.csv")
    out = opens(env, "sends", "load", str(dup))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "on lines 2 and 3" in out.stderr and "nothing was loaded" in out.stderr

    first = sends_csv(
        tmp_path, ["promo,,2026-01-01,1", "promo,x,2026-01-01,2", "news,,2026-01-01,3"], "1.csv"
    )
    out = opens(env, "sends", "load", str(first))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded 3 rows for 2 campaigns (replacing 0 earlier rows)"
    second = sends_csv(tmp_path, ["promo,,2026-01-02,5"], "2.csv")
    out = opens(env, "sends", "load", str(second))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded 1 row for 1 campaign (replacing 2 earlier rows)"
