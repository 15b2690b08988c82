"""Prometheus metrics: one counter per outcome (STYLE §4), on a registry of our own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class CheckpointAge(Collector):
    """Seconds since each owned shard's checkpoint last moved, computed when scraped.

    A reader that is stuck (Kafka refusing writes, a wedged shard) keeps an old checkpoint while
    ``MillisBehindLatest`` may still look fine, so this is the gauge to alert on.
    """

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def checkpointed(self, shard: str) -> None:
        self.last[shard] = time.monotonic()

    def forget(self, shard: str) -> None:
        self.last.pop(shard, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            "opens_kinesis_checkpoint_age_seconds",
            "Seconds since the shard's position was last confirmed: checkpoint written, or "
            "nothing new to read (owned shards only)",
            labels=["shard"],
        )
        now = time.monotonic()
        for shard, at in sorted(self.last.items()):
            g.add_metric([shard], now - at)
        yield g


class ListAge(Collector):
    """``opens_list_age_seconds{list, copy}``: age of each network list the classifier uses
    (``copy``: ``downloaded`` by ``opens data update`` / the worker, or the shipped
    ``snapshot``), computed when scraped."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from processor.lists import list_ages

        g = GaugeMetricFamily(
            "opens_list_age_seconds",
            "Age of each machine-open network list in use (download time, else snapshot date)",
            labels=["list", "copy"],
        )
        for name, (age, kind) in sorted(list_ages(self.data_dir).items()):
            g.add_metric([name, kind], age)
        yield g


class Metrics:
    """All metrics of one worker. A fresh registry per instance keeps tests independent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "opens_records",
            "Records by source and outcome (hit, not_pixel, bad:<reason>)",
            ["source", "outcome"],
            registry=r,
        )
        self.kinesis_records = Counter(
            "opens_kinesis_records",
            "Records read from Kinesis and acknowledged by Kafka",
            ["shard"],
            registry=r,
        )
        self.kinesis_lag_ms = Gauge(
            "opens_kinesis_millis_behind_latest",
            "MillisBehindLatest of the last GetRecords",
            ["shard"],
            registry=r,
        )
        self.signatures = Counter(
            "opens_hit_signatures",
            "Decoded hits by pixel signature (invalid = forged or altered, never an open)",
            ["source", "signature"],
            registry=r,
        )
        self.owned_partitions = Gauge(
            "opens_owned_shard_partitions",
            "Partitions of the shard-ownership topic this worker owns (0 while rebalancing)",
            registry=r,
        )
        self.kinesis_errors = Counter(
            "opens_kinesis_errors",
            "Kinesis calls that failed, by error code",
            ["code"],
            registry=r,
        )
        self.checkpoint_age = CheckpointAge()
        r.register(self.checkpoint_age)
        self.duplicates = Counter(
            "opens_duplicates_dropped",
            "Hits dropped by the worker because their request id was already written",
            registry=r,
        )
        self.first_opens = Counter(
            "opens_first_opens",
            "First opens per (campaign, subscriber) published (corrections included)",
            registry=r,
        )
        self.replayed = Counter(
            "opens_hits_messages_replayed",
            "Hits-topic messages delivered again at offsets this worker had already processed",
            registry=r,
        )
        self.rewinds = Counter(
            "opens_hits_rewinds",
            "Seeks back to a hits-topic offset that Kafka consumption skipped, by partition",
            ["partition"],
            registry=r,
        )
        self.offset_holes = Counter(
            "opens_hits_offset_holes",
            "Hits-topic offsets given up on (deleted by retention, or never filled), by reason",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "opens_dead_letters",
            "Records sent to the dead-letter topic, by stage and reason",
            ["stage", "reason"],
            registry=r,
        )
        self.suppressed_hits = Counter(
            "opens_suppressed_hits",
            "Hits of forgotten subscribers dropped before any write, by path",
            ["path"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "opens_kafka_send_errors",
            "Kafka sends that failed and were retried, by topic and error",
            ["topic", "error"],
            registry=r,
        )
        self.sink_rows = Counter("opens_sink_rows", "Rows written to ClickHouse", registry=r)
        self.sink_failures = Counter(
            "opens_sink_failures", "ClickHouse inserts that failed and were retried", registry=r
        )
        self.sink_batch_seconds = Histogram(
            "opens_sink_batch_seconds",
            "Seconds per ClickHouse insert batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
