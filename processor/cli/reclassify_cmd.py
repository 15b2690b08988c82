"""``opens reclassify [--since T] [--campaign C]`` (DESIGN §4; processor.analytics.reclassify)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from processor.cli.context import settings_from
from processor.cli.output import console, err_console, is_terminal
from processor.safe_text import visible


def reclassify_cmd(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="only hits since: 2026-11-01, 2026-11-01T08:00Z, 24h, 7d"),
    ] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="one campaign")] = None,
) -> None:
    """Re-run the current machine-open rules (and network lists) over stored hits: every view as
    if the rules had always been these; a second run changes nothing."""
    from processor.analytics.access import writer_client
    from processor.analytics.reclassify import reclassify
    from processor.analytics.report import parse_since
    from processor.sinks.clickhouse.schema import apply_migrations

    try:
        since_dt = parse_since(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    s = settings_from(ctx)
    client, db = writer_client(s)
    try:
        apply_migrations(client, db)
        if is_terminal():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(
                TextColumn("reclassifying"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                console=err_console,
            ) as bar:  # fmt: skip
                task = bar.add_task("days", total=None)

                def tick(day: date, changed: int) -> None:
                    bar.update(task, advance=1, description=str(day))

                done = reclassify(
                    client, db, data_dir=Path(s.data_dir), privacy=s.ip_privacy,
                    window_seconds=s.machine_timing_seconds, since=since_dt, campaign=campaign,
                    on_day=tick,
                )  # fmt: skip
        else:
            done = reclassify(
                client, db, data_dir=Path(s.data_dir), privacy=s.ip_privacy,
                window_seconds=s.machine_timing_seconds, since=since_dt, campaign=campaign,
            )  # fmt: skip
    finally:
        client.close()
    if is_terminal():
        console.print(
            f"examined {done.examined:,} requests; rewrote {done.changed:,}; "
            f"{done.subscribers:,} subscriber state(s) rebuilt; {len(done.days)} day(s) recounted"
        )
        for line in done.lines():
            console.print(visible(line))
    else:
        summary = {
            "examined": done.examined,
            "changed": done.changed,
            "subscribers": done.subscribers,
            "days": [d.isoformat() for d in done.days],
            "moves": [{"from": a, "to": b, "opens": n} for (a, b), n in sorted(done.moves.items())],
        }
        typer.echo(json.dumps(summary))


def register(app: typer.Typer) -> None:
    app.command("reclassify")(reclassify_cmd)
