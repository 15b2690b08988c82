"""Commands on the ClickHouse side: schema, sends, report, forget, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from processor.cli.context import settings_from
from processor.cli.output import console, err_console, is_terminal
from processor.errors import OpensError

schema_app = typer.Typer(help="ClickHouse schema migrations.", no_args_is_help=True)
sends_app = typer.Typer(help="Delivered sends: the open-rate denominator.", no_args_is_help=True)


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@schema_app.command("apply")
def schema_apply(
    ctx: typer.Context,
    cluster: Annotated[
        str | None,
        typer.Option(help="render the ON CLUSTER / Replicated / Distributed variant"),
    ] = None,
    print_only: Annotated[
        bool,
        typer.Option(
            "--print",
            help="print the SQL instead of running it (always with "
            "--cluster against the embedded default)",
        ),
    ] = False,
) -> None:
    """Create or migrate the ClickHouse schema (numbered migrations, idempotent)."""
    from processor.sinks.clickhouse.client import ClickHouseTarget, connect
    from processor.sinks.clickhouse.schema import (
        apply_hits_ttl,
        apply_migrations,
        render_cluster,
    )

    s = settings_from(ctx)
    target = ClickHouseTarget.parse(s.clickhouse_dsn, s.clickhouse_database)
    if cluster:
        statements = render_cluster(target.database, cluster)
        if print_only or target.embedded:
            typer.echo(";\n\n".join(statements) + ";")
            return
        client = connect(target)
        for stmt in statements:
            client.command(stmt)
        console.print(f"applied {len(statements)} statements on cluster {cluster}")
        return
    client = connect(target)
    try:
        applied = apply_migrations(client, target.database)
        ttl = apply_hits_ttl(client, target.database, s.hits_ttl_days)
    finally:
        client.close()
    for mig in applied:
        console.print(f"applied {mig.version:04d}_{mig.name}")
    if not applied:
        console.print(f"schema of {target.database} is up to date")
    if ttl != "unchanged":
        console.print(ttl)


@schema_app.command("seal")
def schema_seal(
    ctx: typer.Context,
    margin: Annotated[
        int | None,
        typer.Option(help="seconds a day must have been quiet (default OPENS_SEAL_MARGIN_SECONDS)"),
    ] = None,
) -> None:
    """Seal quiet days' counts now (the worker does it every OPENS_SEAL_INTERVAL_SECONDS).

    Views are exact either way; a sealed day is read from its counts instead of its raw hits.
    """
    from processor.analytics.access import writer_client
    from processor.sinks.clickhouse.schema import apply_migrations
    from processor.sinks.clickhouse.seal import seal_quiet_days

    s = settings_from(ctx)
    client, db = writer_client(s)
    try:
        apply_migrations(client, db)
        done = seal_quiet_days(
            client,
            db,
            margin_seconds=s.seal_margin_seconds if margin is None else margin,
            on_day=lambda day, n: console.print(f"sealed {day}: {n:,} count rows"),
        )
    finally:
        client.close()
    console.print(f"sealed {len(done.days)} day(s)" if done.days else "no quiet day to seal")


@sends_app.command("load")
def sends_load(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with columns campaign,category,sent_at,sends; "
            "each (campaign, category, sent_at) at most once"
        ),
    ],
) -> None:
    """Load delivered sends per campaign: the file replaces ALL send rows of every campaign it
    lists (campaigns it does not list keep theirs). The whole file is checked first: a bad row
    or a repeated (campaign, category, sent_at) names its line(s) and nothing is loaded."""
    from processor.analytics.access import writer_client
    from processor.analytics.sends import load_sends, read_sends
    from processor.sinks.clickhouse.schema import apply_migrations

    rows = read_sends(file)
    if not rows:
        console.print(f"{file} has no rows: nothing loaded", markup=False)
        return
    client, db = writer_client(settings_from(ctx))
    try:
        apply_migrations(client, db)
        done = load_sends(client, db, rows)
    finally:
        client.close()
    console.print(
        f"loaded {_count(done.rows, 'row')} for {_count(done.campaigns, 'campaign')}"
        f" (replacing {_count(done.replaced_rows, 'earlier row')})"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def report(
    ctx: typer.Context,
    campaign: Annotated[
        list[str] | None, typer.Option("--campaign", "-c", help="only these campaigns")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="campaigns with an open since: 2026-11-01, 2026-11-01T08:00Z, 24h, 7d"),
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.table,
) -> None:
    """Campaign summary: sends, opens, unique and human opens, open rates (campaign_summary)."""
    from processor.analytics.access import reader_client
    from processor.analytics.report import (
        campaign_report,
        parse_since,
        to_csv,
        to_json,
        to_table,
    )

    try:
        since_dt = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    client, db = reader_client(settings_from(ctx))
    try:
        rep = campaign_report(client, db, campaigns=campaign or (), since=since_dt)
    except Exception as exc:
        if "UNKNOWN_TABLE" in str(exc) or "doesn't exist" in str(exc):
            msg = f"no schema in database {db}"
            raise OpensError(msg, hint="run `opens schema apply` or start the worker") from None
        raise
    finally:
        client.close()
    if fmt is ReportFormat.json:
        typer.echo(to_json(rep))
        return
    if fmt is ReportFormat.csv:
        typer.echo(to_csv(rep), nl=False)
        return
    # Piped output has no terminal width; give the wide table room rather than squeeze it.
    out = console if is_terminal() else Console(width=220)
    out.print(to_table(rep) if rep.rows else "no campaigns yet")


def _confirmed(question: str, yes: bool) -> bool:
    """``--yes``, or no terminal to ask on (a script, a pipe), skips the question (DESIGN §4)."""
    if yes or not (sys.stdin.isatty() and is_terminal()):
        return True
    return typer.confirm(question)


def forget(
    ctx: typer.Context,
    sid: Annotated[str, typer.Option("--sid", help="the subscriber id to erase")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Erase one subscriber everywhere, for good (GDPR): raw hits, first opens and their share of
    the aggregates, and put them on the suppression list so that no later write (a re-run
    backfill, a late log, a Kafka replay) brings them back. `opens unforget` undoes the list
    entry only."""
    from processor.analytics.access import writer_client
    from processor.analytics.forget import forget_subscriber
    from processor.sinks.clickhouse.schema import apply_migrations

    if not sid:
        msg = "must not be empty"
        raise typer.BadParameter(msg, param_hint="--sid")
    if not _confirmed(f"erase every record of subscriber {sid!r}, for good?", yes):
        raise typer.Exit(1)
    s = settings_from(ctx)
    client, db = writer_client(s)
    try:
        apply_migrations(client, db)  # the suppression list must exist before anything else
        done = forget_subscriber(client, db, sid, insert_timeout=s.forget_insert_timeout)
    finally:
        client.close()
    console.print(
        f"removed {done.hits} hits and {done.first_opens} first opens; "
        f"{done.days_recounted} day(s) counted afresh; "
        f"{sid!r} is on the suppression list (undo: opens unforget --sid …)"
    )


def unforget(
    ctx: typer.Context,
    sid: Annotated[str, typer.Option("--sid", help="the subscriber id to allow again")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Take a subscriber off the suppression list: hits written from now on count again. What
    `opens forget` erased stays erased (re-run a backfill to bring logged opens back)."""
    from processor.analytics.access import writer_client
    from processor.analytics.forget import unforget_subscriber
    from processor.sinks.clickhouse.schema import apply_migrations

    if not _confirmed(f"allow hits of forgotten subscriber {sid!r} again?", yes):
        raise typer.Exit(1)
    client, db = writer_client(settings_from(ctx))
    try:
        apply_migrations(client, db)
        removed = unforget_subscriber(client, db, sid)
    finally:
        client.close()
    if not removed:
        msg = f"subscriber {sid!r} is not on the suppression list"
        raise OpensError(msg, hint="nothing to undo")
    console.print(f"{sid!r} is off the suppression list; new hits of theirs will be written")


def dashboard(ctx: typer.Context) -> None:
    """Serve the dashboard (and the read-only query endpoint) against any ClickHouse."""
    from processor.analytics.access import endpoint_backend, endpoint_guard
    from processor.analytics.query_server import check_exposure, serve
    from processor.sinks.clickhouse.client import ClickHouseTarget, connect
    from processor.sinks.clickhouse.schema import apply_migrations

    s = settings_from(ctx)
    guard = endpoint_guard(s)
    check_exposure(guard)  # before anything is opened: the one-line reason, no traceback
    target = ClickHouseTarget.parse(s.clickhouse_dsn, s.clickhouse_database)
    client = connect(target)
    apply_migrations(client, target.database)

    async def run() -> None:
        from processor.analytics.endpoint_file import published

        runner = await serve(endpoint_backend(s, client), guard, s.query_port)
        err_console.print(f"dashboard: {s.query_url}/dashboard  (Ctrl-C stops)")
        try:
            with published(s) if target.embedded else contextlib.nullcontext():
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def register(app: typer.Typer) -> None:
    app.add_typer(schema_app, name="schema")
    app.add_typer(sends_app, name="sends")
    app.command()(report)
    app.command()(forget)
    app.command()(unforget)
    app.command()(dashboard)
