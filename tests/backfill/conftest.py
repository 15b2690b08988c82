"""Helpers shared by the backfill tests: run a backfill in-process against the session chDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from processor.backfill.encode import Encoder
from processor.backfill.fetch import ReadPolicy
from processor.backfill.run import BackfillOptions, BackfillSummary, run_backfill
from processor.backfill.sinks import Delivery, DirectDelivery
from processor.sinks.clickhouse.schema import apply_migrations
from tests.backfill.logs import CTX

RunFn = Callable[..., BackfillSummary]


@pytest.fixture
def backfill_db(chdb_client: Any, ch_database: str) -> str:
    apply_migrations(chdb_client, ch_database)
    return ch_database


@pytest.fixture
def run_direct(chdb_client: Any, backfill_db: str) -> RunFn:
    def run(
        *sources: str,
        since: datetime | None = None,
        until: datetime | None = None,
        force: bool = False,
        s3_client: Any = None,
        delivery: Callable[[], Delivery] | None = None,
        mode: str = "direct",
        page_size: int = 1000,
        decode_processes: int = 0,
        encode: Encoder | None = None,
        read: ReadPolicy | None = None,
    ) -> BackfillSummary:
        return run_backfill(
            BackfillOptions(
                list(sources),
                since=since,
                until=until,
                force=force,
                mode=mode,
                page_size=page_size,
                read=read or ReadPolicy(),
            ),
            ctx=CTX,
            client=chdb_client,
            database=backfill_db,
            delivery=delivery or (lambda: DirectDelivery(chdb_client, backfill_db)),
            encode=encode,
            s3_client=s3_client,
            decode_processes=decode_processes,
        )

    return run


def manifest(client: Any, db: str) -> dict[str, tuple[Any, ...]]:
    rows = client.query(
        "SELECT object, lines, hits, bad_lines, complete, failures, examples, count() OVER"
        " (PARTITION BY object) FROM {db:Identifier}.backfill_manifest FINAL",
        parameters={"db": db},
    ).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


def hit_rows(client: Any, db: str) -> int:
    return int(client.command(f"SELECT count() FROM {db}.hits FINAL"))
