"""How a command reaches ClickHouse: directly, or through the process that holds chDB.

chDB lets one process own a data directory. While `opens worker` owns it, that process
serves a read-only ClickHouse-compatible endpoint and records its address in
``settings.endpoint_file``; readers then go through that endpoint with the ordinary HTTP client.
"""

from __future__ import annotations

from typing import Any

from processor.analytics.endpoint_file import held_endpoint
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect


def reader_client(settings: Settings) -> tuple[Any, str]:
    """A client for reading, and the database name."""
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    if target.embedded and (url := held_endpoint(settings)):
        return connect(ClickHouseTarget(url, target.database)), target.database
    return connect(target), target.database


def writer_client(settings: Settings) -> tuple[Any, str]:
    """A client for writing (sends, forget): never through the read-only endpoint."""
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    return connect(target), target.database
