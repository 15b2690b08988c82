"""The Faust application: Kinesis source → Kafka → decode → ClickHouse sink.

Built by ``create_app(settings)``; there is no module-level app object. Faust runs with
``processing_guarantee='at_least_once'`` (its exactly-once mode has open bugs) and every write
downstream is idempotent instead (DESIGN §1).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust import streams as faust_streams
from faust.web import Request, Response, View

from processor.backoff import backoff_delay, retry
from processor.core.builder import reload_classifiers
from processor.core.fields import canonical_order
from processor.core.hit import Hit
from processor.core.native import realtime_decoder
from processor.core.outcome import Failure
from processor.core.privacy import ip_treatment, raw_treatment, treat_ips_in_text
from processor.core.realtime import RealtimeDecoder
from processor.dedupe import Admission, FirstOpen, SubscriberState, admit
from processor.lists import configured_sources, http_fetch, list_ages, update_lists
from processor.metrics import ListAge, Metrics
from processor.offset_guard import OffsetGuard
from processor.offsets import offset_key, subscriber_key
from processor.settings import Settings
from processor.sinks.clickhouse.client import ClickHouseTarget, connect
from processor.sinks.clickhouse.schema import apply_migrations
from processor.sinks.clickhouse.seal import seal_quiet_days
from processor.sinks.clickhouse.sink import ClickHouseSink
from processor.sources.checkpoints import KafkaCheckpoints, shard_partition
from processor.sources.kinesis import KinesisSource, SourceRecord, kinesis_client
from processor.table_writes import write_table
from processor.wire import (
    first_opens_message,
    hits_by_partition,
    hits_from_message,
    hits_message,
)
from processor.worker_suppression import WorkerSuppression

log = logging.getLogger(__name__)

HITS_PER_MESSAGE = 500  # keeps one Kafka message well under the 1 MB default


class ReaderControl:
    """The one task that runs the Kinesis readers between two rebalances.

    A failure (Kinesis unreachable, Kafka refusing the checkpoint topic) is logged, counted and
    retried with back-off: the worker keeps going instead of silently stopping to read.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.task: asyncio.Task[None] | None = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = asyncio.create_task(self._supervise(run))

    async def _supervise(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        attempt = 0
        while True:
            try:
                await run()
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, base=0.5, cap=30.0)
                self.metrics.kinesis_errors.labels(type(exc).__name__).inc()
                log.exception(
                    "Kinesis readers failed (attempt %d), retrying in %.1fs", attempt, delay
                )
                await asyncio.sleep(delay)
            else:
                return

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def as_current_event(event: Any) -> None:
    """Make ``event`` this task's current event, which Faust's tables read to pick the partition
    (RocksDB database and changelog partition) of a key.

    Only the context variable is set, never ``stream.current_event``: ``take_events`` fills its
    buffer from that attribute in another task, and changing it there pairs a message with the
    wrong event, so one message is processed twice and another never.
    """
    faust_streams._current_event.set(weakref.ref(event))


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
    # Counted per batch: a labelled Prometheus counter per record was a visible share of the
    # worker's CPU in scripts/bench_worker.
    outcomes: Counter[str] = Counter()
    signatures: Counter[str] = Counter()
    for rec in records:
        out = decoder.decode(rec.data)
        if isinstance(out, Hit):
            if out.is_hit:
                hits.append(out)
                outcomes["hit"] += 1
                signatures[out.signature] += 1
            else:  # the pixel, but not countable: POST, 404, no sid/cid …
                outcomes["not_hit"] += 1
        elif isinstance(out, Failure):
            bad.append((rec, out))
            outcomes[f"bad:{out.reason}"] += 1
        else:
            outcomes["not_pixel"] += 1
    for outcome, n in outcomes.items():
        metrics.records.labels("realtime", outcome).inc(n)
    for signature, n in signatures.items():
        metrics.signatures.labels("realtime", signature).inc(n)
    return hits, bad


def create_app(settings: Settings, *, hits_partitions: int | None = None) -> faust.App:
    """``hits_partitions``: the hits topic's partition count when the topic already exists
    (the subscriber table must be co-partitioned with it; the setting only shapes new topics)."""
    hits_n = hits_partitions or settings.topic_partitions
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_brokers),
        processing_guarantee="at_least_once",
        store=settings.table_store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout / 3),
        # A topic created at start-up can be missing from the metadata of the first join; the
        # group is reassigned when a refresh shows it, so refresh in seconds, not 5 minutes.
        consumer_metadata_max_age_ms=10_000,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
    )
    pipe = Pipeline(settings)
    app.pipeline = pipe  # type: ignore[attr-defined]
    decoder = realtime_decoder(settings.realtime_fields, settings.decode_context())
    # Dead letters keep the raw record, with its client IPs treated as the decoder treats them.
    private_raw = raw_treatment(canonical_order(settings.realtime_fields), settings.ip_privacy)
    treat_ip = ip_treatment(settings.ip_privacy)

    def private_text(text: str) -> str:
        return treat_ips_in_text(text, treat_ip)

    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)

    def open_client() -> Any:
        # Runs in the sink's thread on first use (and after a failure): a ClickHouse that is
        # down at start-up delays writes instead of stopping the worker.
        client = connect(target)
        apply_migrations(client, target.database)
        return client

    sink = pipe.sink = ClickHouseSink(open_client, target.database, pipe.metrics)

    def partitions_of(t: Any) -> int:
        """Partitions the broker reports for ``t`` (the setting only applies to new topics)."""
        n = app.consumer.topic_partitions(t.get_topic_name())
        return int(n) if n else settings.topic_partitions

    def topic(name: str, partitions: int = settings.topic_partitions) -> Any:
        # internal=True makes Faust create the topic with our partition count at start-up;
        # Kafka 4 does not auto-create topics for consumers.
        return app.topic(
            name,
            key_type=str,
            value_serializer="json",
            partitions=partitions,
            internal=True,
        )

    hits_topic = topic(settings.topic_hits, hits_n)
    dead_topic = topic(f"{settings.topic_hits}-dead-letters")

    async def until_done(what: str, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Retry a Kafka step with back-off until it succeeds.

        An exception escaping an agent makes Faust restart it and move past the event, which
        would lose it; retrying keeps the event unacknowledged (so uncommitted) until it is
        handled. A partly done step repeats harmlessly: every consumer downstream dedupes.
        """

        def failed(exc: Exception, attempt: int, delay: float) -> None:
            pipe.metrics.kafka_errors.labels(what, type(exc).__name__).inc()
            log.warning("sending to %s failed (%r); retry %d in %.1fs", what, exc, attempt, delay)

        await retry(step, failed)

    async def send_hits(hits: list[Hit]) -> None:
        """Hits to their subscriber partitions, returning once the broker acknowledged all."""
        pending = []
        for partition, group in hits_by_partition(hits, partitions_of(hits_topic)).items():
            for i in range(0, len(group), HITS_PER_MESSAGE):
                chunk = hits_message(group[i : i + HITS_PER_MESSAGE])
                pending.append(await hits_topic.send(value=chunk, partition=partition))
        await asyncio.gather(*pending)

    async def dead_letter(stage: str, reason: str, **value: Any) -> None:
        pipe.metrics.dead_letters.labels(stage, reason).inc()
        body = {"stage": stage, "reason": reason, **value}

        async def send() -> None:
            await dead_topic.send(key=value.get("key"), value=body)

        await until_done(dead_topic.get_topic_name(), send)

    def read_hits(message: Any) -> list[Hit] | Exception:
        try:
            return hits_from_message(message)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return exc

    async def forward(shard: str, records: list[SourceRecord]) -> None:
        """Decode, then send hits and dead letters to Kafka; returns once the broker acknowledged
        everything, so the caller may checkpoint (a crash re-reads, never skips).

        Decoding here, in the reader, puts the decoded hits straight on the subscriber-keyed
        topic (DESIGN §1): one Kafka hop, so one consumer whose offsets can go wrong, not two.
        """
        hits, bad = decode_records(decoder, records, pipe.metrics)
        for rec, failure in bad:
            await dead_letter(
                "decode",
                failure.reason,
                key=rec.shard,
                field=failure.field,
                detail=failure.detail,
                source="realtime",
                position={"shard": rec.shard, "seq": rec.seq, "sub": rec.sub},
                raw=base64.b64encode(private_raw(rec.data)).decode("ascii"),
            )
        if hits:
            await until_done(settings.topic_hits, functools.partial(send_hits, hits))

    first_opens_topic = app.topic(
        settings.topic_first_opens,
        key_type=str,
        value_serializer="json",
        partitions=settings.topic_partitions,
        internal=True,
    )
    subscribers = app.Table(
        "subscribers",
        partitions=hits_n,
        key_type=str,  # values are plain JSON objects (SubscriberState.to_json)
        help="dedupe + first-open state per subscriber id (see processor.dedupe)",
    )

    guard = OffsetGuard(app, subscribers, settings.topic_hits, pipe.metrics, as_current_event)

    def owned_hits_partitions() -> set[int]:
        if not pipe.consuming:  # mid-rebalance: no partition's state is ours to change
            return set()
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_hits}

    suppression = WorkerSuppression(
        sink.call,
        target.database,
        pipe.metrics,
        table=subscribers,
        producer=lambda: cast(Any, app.producer)._ensure_producer(),
        owned=owned_hits_partitions,
        partitions=lambda: partitions_of(hits_topic),
    )

    @app.timer(interval=settings.suppression_refresh_seconds)
    async def refresh_suppression() -> None:
        """Forgotten subscribers: the worker's copy of the list (processor.worker_suppression)."""
        await suppression.refresh()

    pipe.metrics.registry.register(ListAge(settings.data_dir))

    @app.timer(interval=max(60.0, min(3600.0, settings.lists_refresh_hours * 3600)))
    async def refresh_lists_timer() -> None:
        """``opens data update`` once a list in use is older than OPENS_LISTS_REFRESH_HOURS
        (a fresh install's snapshots too); decoders use new lists from their next hit."""
        ages = await asyncio.to_thread(list_ages, settings.data_dir)
        limit = settings.lists_refresh_hours * 3600
        if limit <= 0 or all(age < limit for age, _ in ages.values()):
            return
        sources = configured_sources(settings.gateway_list_url)
        results = await asyncio.to_thread(
            update_lists, settings.data_dir, http_fetch(60.0), sources
        )
        for r in results:
            if not r.ok:
                log.warning("network list %s not refreshed: %s", r.name, r.detail)
        reload_classifiers()

    sealer: dict[str, Any] = {}

    def seal_now() -> None:
        if "client" not in sealer:
            sealer["client"] = open_client()
        done = seal_quiet_days(
            sealer["client"], target.database, margin_seconds=settings.seal_margin_seconds
        )
        if done.days:
            log.info("sealed %d quiet day(s): %s", len(done.days), done.days[-1])

    @app.timer(interval=max(1.0, settings.seal_interval_seconds))
    async def seal_quiet_days_timer() -> None:
        """Quiet days' counts, sealed so the views read a month cheaply (migration 0011)."""
        if settings.seal_interval_seconds <= 0:
            return
        try:
            await asyncio.to_thread(seal_now)
        except Exception as exc:  # ClickHouse unreachable: views stay exact, only slower
            sealer.pop("client", None)
            log.warning("quiet days not sealed: %r", exc)

    @app.timer(interval=max(2.0, settings.sink_flush_seconds))
    async def seek_back_idle_partitions() -> None:
        """A skipped message at the very end of a partition is revealed by no later message;
        look for it once the partition has been quiet for a while (processor.offset_guard)."""
        if not pipe.consuming:
            return
        try:
            await guard.check_idle(idle_seconds=max(5.0, 3 * settings.sink_flush_seconds))
        except Exception as exc:  # Kafka unreachable: the next tick tries again
            log.warning("idle hits partitions not checked: %r", exc)

    async def handle(batch: Sequence[Any]) -> None:
        events, ends = await guard.in_order(batch)
        owner: dict[str, Any] = {}  # subscriber id → the event (partition) it came in
        hits: list[Hit] = []
        for event in events:
            got = read_hits(event.value)
            if isinstance(got, Exception):
                # Not a hits batch we can read (another version, a stray producer): keep it
                # as a dead letter instead of crashing the agent.
                pipe.metrics.records.labels("kafka", "bad:hits_message").inc()
                log.warning("unreadable message on %s: %s", settings.topic_hits, got)
                await dead_letter(
                    "store",
                    "hits_message",
                    detail=str(got),
                    raw=private_text(json.dumps(event.value, default=str)[:100_000]),
                )
                continue
            for h in got:
                owner.setdefault(h.sid or "", event)
            hits.extend(got)
        if suppression.sids is None:
            await suppression.refresh()
        # Forgotten subscribers: no dedupe state, no first opens, no write (ClickHouse's
        # hits_ingest would refuse them anyway); their state is overwritten by a tombstone.
        split = suppression.split(hits)
        hits = split.kept

        # Table reads and writes go through the event the key arrived in: it names the
        # partition (RocksDB keeps one database per partition, the changelog follows it).
        state_of: dict[str, SubscriberState] = {}
        for sid, event in owner.items():
            if sid in split.sids:
                continue
            as_current_event(event)
            state_of[sid] = SubscriberState.from_json(subscribers.get(subscriber_key(sid)))
        out = admit(hits, state_of, settings.dedupe_horizon_hours)

        # Awaited here: first opens, state and offsets move only after ClickHouse has the hits.
        await sink.write(out.fresh)
        async with suppression.lock:  # the list may have grown during the write
            await after_write(owner, out, split.sids, ends)

    async def after_write(
        owner: dict[str, Any],
        out: Admission,
        dropped: set[str],
        ends: dict[int, tuple[Any, int]],
    ) -> None:
        """First opens, then state and offsets; listed subscribers get tombstones instead."""
        gone = dropped | {sid for sid in out.states if suppression.listed(sid)}
        out.first_opens = [f for f in out.first_opens if f.sid not in gone]

        # First opens before the state that remembers them: a crash in between publishes them
        # again on replay (consumers keep the minimum per pair); the other order would lose them.
        # One message per subscriber partition (like the hits topic): a keyed message per first
        # open cost more than everything else in the agent put together.
        n = partitions_of(first_opens_topic)
        groups: dict[int, list[FirstOpen]] = {}
        for f in out.first_opens:
            groups.setdefault(owner[f.sid].message.partition % n, []).append(f)

        async def publish(groups: dict[int, list[FirstOpen]] = groups) -> None:
            sent = [
                await first_opens_topic.send(value=first_opens_message(g), partition=p)
                for p, g in groups.items()
            ]
            await asyncio.gather(*sent)  # acked before the state below is written

        await until_done(settings.topic_first_opens, publish)

        records: list[tuple[Any, str, Any]] = [
            (owner[sid], subscriber_key(sid), state.to_json())
            for sid, state in out.states.items()
            if sid not in gone
        ]
        records += [(owner[sid], subscriber_key(sid), None) for sid in gone]  # tombstones
        records += [(ev, offset_key(p), {"next": nxt}) for p, (ev, nxt) in ends.items()]
        await write_table(
            subscribers,
            cast(Any, app.producer)._ensure_producer(),  # the aiokafka one, flushed on commit
            records,
            as_current_event,
        )
        pipe.metrics.duplicates.inc(out.duplicates)
        pipe.metrics.first_opens.inc(len(out.first_opens))

    @app.agent(hits_topic)
    async def store(stream: Any) -> None:
        """Dedupe → first opens → ClickHouse, a batch of hits messages at a time.

        Order matters for exactness: the fresh hits are written to ClickHouse first; only after
        its ack are the first opens published, and only after theirs are the subscriber states
        and each partition's next offset stored. A crash in between replays the batch against
        the old state, so stored state never claims a hit that ClickHouse lacks, and the
        replayed writes are idempotent there (DESIGN §1). Which messages a batch may process at
        all is decided by our own stored offsets, not by Faust's commits (processor.offsets).
        """
        # Each message holds many hits: take a bounded number of messages per insert.
        messages = max(1, settings.sink_batch_size // 100)
        async for batch in stream.take_events(messages, within=settings.sink_flush_seconds):
            guard.busy = True
            try:
                await handle(batch)
            finally:
                guard.busy = False

    # --- Kinesis shards: owned through Kafka's group assignment, checkpointed in Kafka ---
    shards_topic = app.topic(
        settings.topic_shards,
        key_type=str,
        value_serializer="json",
        partitions=settings.topic_partitions,
        internal=True,
        compacting=True,
    )

    async def send_checkpoint(shard: str, partition: int, value: dict[str, str]) -> None:
        await (await shards_topic.send(key=shard, value=value, partition=partition))

    checkpoints = KafkaCheckpoints(
        settings.kafka_brokers, settings.topic_shards, settings.topic_partitions, send_checkpoint
    )
    owned_partitions: set[int] = set()
    readers = ReaderControl(pipe.metrics)

    def owns(shard: str) -> bool:
        return shard_partition(shard, checkpoints.partitions) in owned_partitions

    def new_source() -> KinesisSource:
        return KinesisSource(
            kinesis_client(),
            settings.kinesis_stream,
            forward,
            pipe.metrics,
            checkpoints=checkpoints,
            owns=owns,
            start=settings.kinesis_start,
            start_timestamp=settings.kinesis_start_timestamp,
            poll_interval=settings.kinesis_poll_interval,
        )

    @app.agent(shards_topic)
    async def shard_ownership(stream: Any) -> None:
        """Consumes the checkpoint topic only so that its partitions are assigned to workers:
        the assignment *is* the shard ownership."""
        async for _ in stream:
            pass

    @app.on_partitions_revoked.connect
    async def _stop_readers(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        pipe.consuming = False
        pipe.metrics.owned_partitions.set(0)
        guard.forget()
        suppression.reassigned()
        await readers.stop()

    @app.on_partitions_assigned.connect
    async def _note_ownership(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        assigned = args[0] if args else kw.get("assigned", set())
        owned_partitions.clear()
        owned_partitions.update(
            tp.partition for tp in assigned if tp.topic == shards_topic.get_topic_name()
        )

    @app.on_rebalance_complete.connect
    async def _start_readers(sender: Any, /, *args: Any, signal: Any, **kw: Any) -> None:
        # After recovery: read every checkpoint (ours and, for resharding, other workers').
        async def run() -> None:
            # The topics' real partition counts win over the setting (topics made earlier).
            checkpoints.partitions = partitions_of(shards_topic)
            await checkpoints.refresh()
            pipe.source = new_source()
            pipe.consuming = True
            pipe.metrics.owned_partitions.set(len(owned_partitions))
            log.info(
                "owning Kafka partitions %s of %s", sorted(owned_partitions), settings.topic_shards
            )
            await pipe.source.run(refresh_seconds=settings.kinesis_refresh_seconds)

        readers.start(run)

    @app.task
    async def declare_send_only_topics() -> None:
        # No agent reads these, so Faust would not create the topics by itself.
        await dead_topic.maybe_declare()
        await first_opens_topic.maybe_declare()

    @app.task
    async def query_endpoint() -> None:
        """The read-only ClickHouse-compatible endpoint and the dashboard, in this process
        because only this process may open the embedded ClickHouse."""
        from processor.analytics.access import endpoint_backend, endpoint_guard
        from processor.analytics.endpoint_file import published
        from processor.analytics.query_server import serve

        attempt = 0
        while True:
            # A task that raises crashes the Faust app (and the process stays up, consuming
            # nothing), so a ClickHouse that is down at start-up is waited for, not fatal.
            try:
                client = await asyncio.to_thread(open_client)
                break
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, base=0.5, cap=30.0)
                log.warning(
                    "query endpoint: ClickHouse unreachable (attempt %d), retrying in %.1fs: %s",
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
        backend = endpoint_backend(settings, client)
        runner = await serve(backend, endpoint_guard(settings), settings.query_port)
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
