"""How a command reaches ClickHouse: directly, or through the process that holds chDB.

chDB lets one process own a data directory. While `opens worker` owns it, that process
serves a read-only ClickHouse-compatible endpoint and records its address in
``settings.endpoint_file``; readers then go through that endpoint with the ordinary HTTP client.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from processor.analytics.endpoint_file import held_endpoint
from processor.analytics.query_backends import ChdbReaders, QueryBackend, ServerReaders
from processor.analytics.query_policy import ReaderLimits
from processor.analytics.web_guard import Guard
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect


def reader_client(settings: Settings) -> tuple[Any, str]:
    """A client for reading, and the database name."""
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    if target.embedded and (url := held_endpoint(settings)):
        if settings.query_user:
            password = quote(settings.query_password.get_secret_value(), safe="")
            parts = urlsplit(url)
            url = (
                f"{parts.scheme}://{quote(settings.query_user, safe='')}:{password}@{parts.netloc}"
            )
        return connect(ClickHouseTarget(url, target.database)), target.database
    return connect(target), target.database


def writer_client(settings: Settings) -> tuple[Any, str]:
    """A client for writing (sends, forget): never through the read-only endpoint."""
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    return connect(target), target.database


def reader_limits(settings: Settings) -> ReaderLimits:
    return ReaderLimits(
        max_execution_seconds=settings.query_max_execution_seconds,
        max_memory_bytes=settings.query_max_memory_bytes,
        max_result_rows=settings.query_max_result_rows,
        max_result_bytes=settings.query_max_result_bytes,
        max_threads=settings.query_max_threads,
    )


def endpoint_guard(settings: Settings) -> Guard:
    return Guard(
        bind_host=settings.query_host,
        allowed_hosts=frozenset(settings.query_allowed_hosts),
        user=settings.query_user,
        password=settings.query_password.get_secret_value(),
    )


def endpoint_backend(settings: Settings, engine_client: Any) -> QueryBackend:
    """Reader sessions for the endpoint: on the embedded engine that ``engine_client`` opened,
    or on the server (with the reader account when one is configured)."""
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    limits = reader_limits(settings)
    if target.embedded:
        path = str(engine_client.path)
        return ChdbReaders(path, target.database, limits, settings.query_concurrency)
    url = settings.clickhouse_reader_url or target.dsn
    return ServerReaders(url, target.database, limits, settings.query_concurrency)
