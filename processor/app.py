"""The Faust application: Kinesis source → Kafka → decode → ClickHouse sink.

Built by ``create_app(settings)``; there is no module-level app object. Faust runs with
``processing_guarantee='at_least_once'`` (its exactly-once mode has open bugs) and every write
downstream is idempotent instead (DESIGN §1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.web import Request, Response, View

from processor.core.hit import Hit
from processor.core.outcome import Failure
from processor.core.realtime import RealtimeDecoder
from processor.metrics import Metrics
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect
from processor.sinks.clickhouse.schema import apply_migrations
from processor.sinks.clickhouse.sink import ClickHouseSink
from processor.sources.kinesis import KinesisSource, SourceRecord

log = logging.getLogger(__name__)

RECORDS_PER_MESSAGE = 500  # keeps one Kafka message well under the 1 MB default


def broker_urls(brokers: str) -> list[str]:
    return [f"kafka://{b.strip()}" for b in brokers.split(",") if b.strip()]


@dataclass
class Pipeline:
    """Everything the agents share; attached to the app so tests can reach it."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    sink: ClickHouseSink | None = None
    source: KinesisSource | None = None
    consuming: bool = False


def decode_records(
    decoder: RealtimeDecoder, records: Sequence[SourceRecord], metrics: Metrics
) -> tuple[list[Hit], list[tuple[SourceRecord, Failure]]]:
    """Pure step: raw records → hits and failures, one outcome counted per record."""
    hits: list[Hit] = []
    bad: list[tuple[SourceRecord, Failure]] = []
    for rec in records:
        out = decoder.decode(rec.data)
        if isinstance(out, Hit):
            if out.is_hit:
                hits.append(out)
                metrics.records.labels("realtime", "hit").inc()
            else:  # the pixel, but not countable: POST, 404, no sid/cid …
                metrics.records.labels("realtime", "not_hit").inc()
        elif isinstance(out, Failure):
            bad.append((rec, out))
            metrics.records.labels("realtime", f"bad:{out.reason}").inc()
        else:
            metrics.records.labels("realtime", "not_pixel").inc()
    return hits, bad


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_brokers),
        processing_guarantee="at_least_once",
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
    )
    pipe = Pipeline(settings)
    app.pipeline = pipe  # type: ignore[attr-defined]
    decoder = RealtimeDecoder(settings.realtime_fields, settings.decode_context())
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)

    def open_client() -> Any:
        # Runs in the sink's thread on first use (and after a failure): a ClickHouse that is
        # down at start-up delays writes instead of stopping the worker.
        client = connect(target)
        apply_migrations(client, target.database)
        return client

    sink = pipe.sink = ClickHouseSink(open_client, target.database, pipe.metrics)

    def topic(name: str) -> Any:
        # internal=True makes Faust create the topic with our partition count at start-up;
        # Kafka 4 does not auto-create topics for consumers.
        return app.topic(
            name,
            key_type=str,
            value_serializer="json",
            partitions=settings.topic_partitions,
            internal=True,
        )

    raw_topic = topic(settings.topic_raw)
    hits_topic = topic(settings.topic_hits)
    dead_topic = topic(f"{settings.topic_hits}-dead-letters")

    async def forward(shard: str, records: list[SourceRecord]) -> None:
        """Send to Kafka and wait for the broker's acks before the caller checkpoints."""
        pending = []
        for i in range(0, len(records), RECORDS_PER_MESSAGE):
            chunk = records[i : i + RECORDS_PER_MESSAGE]
            value = {"shard": shard, "records": [r.to_wire() for r in chunk]}
            pending.append(await raw_topic.send(key=shard, value=value))
        await asyncio.gather(*pending)

    @app.agent(raw_topic)
    async def decode(stream: Any) -> None:
        async for message in stream:
            records = [SourceRecord.from_wire(r) for r in message["records"]]
            hits, bad = decode_records(decoder, records, pipe.metrics)
            for rec, failure in bad:
                await dead_topic.send(
                    key=rec.shard,
                    value={
                        "stage": "decode",
                        "reason": failure.reason,
                        "field": failure.field,
                        "detail": failure.detail,
                        "source": "realtime",
                        "position": {"shard": rec.shard, "seq": rec.seq, "sub": rec.sub},
                        "raw": SourceRecord.to_wire(rec)["data"],
                    },
                )
            for hit in hits:
                await hits_topic.send(key=hit.sid or "", value=hit.to_wire())

    @app.agent(hits_topic)
    async def store(stream: Any) -> None:
        batches = stream.take(settings.sink_batch_size, within=settings.sink_flush_seconds)
        async for batch in batches:
            # Awaited here, so offsets of these events are committed only after ClickHouse has them.
            await sink.write([Hit.from_wire(d) for d in batch])

    @app.task
    async def kinesis_source() -> None:
        import boto3

        client = boto3.client("kinesis")
        pipe.source = KinesisSource(
            client,
            settings.kinesis_stream,
            forward,
            pipe.metrics,
            start=settings.kinesis_start,
            poll_interval=settings.kinesis_poll_interval,
        )
        pipe.consuming = True
        await pipe.source.run()

    @app.task
    async def query_endpoint() -> None:
        """The read-only ClickHouse-compatible endpoint and the dashboard, in this process
        because only this process may open the embedded ClickHouse."""
        from processor.analytics.endpoint_file import published
        from processor.analytics.query_server import ClientBackend, serve

        client = await asyncio.to_thread(open_client)
        runner = await serve(
            ClientBackend(client, target.database), settings.query_host, settings.query_port
        )
        log.info("read-only query endpoint and dashboard on %s", settings.query_url)
        try:
            with published(settings):
                await asyncio.Event().wait()  # until the worker stops (cancellation)
        finally:
            await runner.cleanup()

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ready = pipe.consuming
            return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    class PromMetrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(pipe.metrics.exposition(), content_type="text/plain; version=0.0.4")

    return app
