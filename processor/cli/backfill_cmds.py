"""``opens backfill`` (DESIGN §4): standard logs and S3 access logs into the pipeline.

Thin wrapper over ``processor.backfill``: arguments, settings, connections, progress and the
exit status. Exit 0: every line of every object was read; 3: the run finished but some lines or
objects were skipped (bad lines, damaged objects: listed in the summary and the manifest); 4: some
objects could not be read (retried with back-off, then given up: one ``opens backfill:`` line each
on stderr), they stay pending and the next run reads them again; 1/2: the run could not proceed.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from processor.cli.context import settings_from
from processor.safe_text import visible

__all__ = ["EXIT_PENDING", "EXIT_SKIPPED", "register"]

EXIT_SKIPPED = 3
EXIT_PENDING = 4


def _when(value: str | None, option: str) -> Any:
    from processor.analytics.report import parse_since

    if not value:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def backfill_cmd(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(help="s3://bucket/prefix, or a local log file or folder (plain or gzip)."),
    ],
    since: Annotated[
        str | None,
        typer.Option(help="only requests from this time on: 2026-11-01T08:00Z, 24h, 7d"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="only requests before this time")] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="decode and write to ClickHouse in this process (no Kafka broker needed)",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="redo objects the manifest lists as finished")
    ] = False,
) -> None:
    """Backfill from CloudFront standard logs / S3 access logs; resumable and idempotent.

    Objects already in the manifest (same ETag) are skipped; hits already seen in real time are not counted again.

    Exit status:
    0 every line of every object was read;
    3 some lines were bad or an object is damaged (corrupt or truncated gzip: the part before the damage is loaded, the object recorded as damaged and not read again unless it changes, or --force);
    4 an object could not be read, even after retries (named on stderr): it stays pending, run again to load it.
    """  # noqa: E501 - help text: typer keeps these line breaks
    from processor.backfill.encode import ArrowRows, Encoder, KafkaMessages
    from processor.backfill.progress import make_progress
    from processor.backfill.run import BackfillOptions, run_backfill
    from processor.backfill.sinks import (
        Delivery,
        DirectDelivery,
        KafkaDelivery,
        topic_partitions,
    )
    from processor.sinks.clickhouse.client import ClickHouseTarget, connect
    from processor.sinks.clickhouse.schema import apply_migrations

    settings = settings_from(ctx)
    since_dt, until_dt = _when(since, "--since"), _when(until, "--until")
    if since_dt and until_dt and since_dt >= until_dt:
        msg = "must be later than --since"
        raise typer.BadParameter(msg, param_hint="--until")
    decode_ctx = dataclasses.replace(settings.decode_context(), data_dir=settings.data_dir)
    target = ClickHouseTarget.parse(settings.clickhouse_dsn, settings.clickhouse_database)
    if not direct and target.embedded:
        # A running worker owns the embedded ClickHouse (one process per chDB directory), so in
        # Kafka mode the manifest lives in the backfill's own embedded directory.
        manifest_dir = (Path(settings.data_dir) / "backfill-manifest").resolve()
        target = ClickHouseTarget(f"chdb://{manifest_dir}", target.database)
    s3_client = None
    if any(s.startswith("s3://") for s in sources):
        import boto3

        s3_client = boto3.client("s3")
    client = connect(target)
    try:
        apply_migrations(client, target.database)
        partitions = settings.topic_partitions
        if not direct:
            brokers, topic = settings.kafka_brokers, settings.topic_hits
            partitions = topic_partitions(brokers, topic) or partitions
        encode: Encoder = ArrowRows() if direct else KafkaMessages(partitions)

        def delivery() -> Delivery:
            if direct:
                return DirectDelivery(client, target.database)
            return KafkaDelivery(settings.kafka_brokers, settings.topic_hits, partitions)

        summary = run_backfill(
            BackfillOptions(
                sources,
                since=since_dt,
                until=until_dt,
                force=force,
                mode="direct" if direct else "kafka",
            ),
            ctx=decode_ctx,
            client=client,
            database=target.database,
            delivery=delivery,
            encode=encode,
            s3_client=s3_client,
            progress=make_progress(),
        )
    finally:
        client.close()
    _report(summary)


def _report(summary: Any) -> None:
    """The human summary on a terminal, the pending objects always, and the exit status."""
    if sys.stderr.isatty():
        typer.echo(
            f"{summary.objects:,} objects ({summary.skipped_done:,} already done), "
            f"{summary.lines:,} lines, {summary.hits:,} hits, {summary.bad_lines:,} bad lines, "
            f"{summary.incomplete:,} objects damaged, {len(summary.pending):,} left pending, "
            f"{summary.lines / max(summary.seconds, 1e-9):,.0f} lines/s",
            err=True,
        )
        for problem in summary.problems[:50]:
            typer.echo(f"  skipped {visible(problem)}", err=True)
        for damaged in summary.already_damaged[:50]:
            typer.echo(f"  damaged (recorded by an earlier run) {visible(damaged)}", err=True)
    # Always, terminal or not: the one thing an operator must act on (run again).
    for stopped in summary.pending:
        typer.echo(
            f"opens backfill: cannot read {visible(stopped)}; left pending, run again", err=True
        )
    if summary.pending:
        raise typer.Exit(EXIT_PENDING)
    if not summary.clean:
        raise typer.Exit(EXIT_SKIPPED)


def register(app: typer.Typer) -> None:
    """Add ``backfill`` to the ``opens`` application."""
    app.command("backfill")(backfill_cmd)
