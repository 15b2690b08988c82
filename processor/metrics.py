"""Prometheus metrics: one counter per outcome (STYLE §4), on a registry of our own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        self.kinesis_errors = Counter(
            "opens_kinesis_errors",
            "Kinesis calls that failed, by error code",
            ["code"],
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
