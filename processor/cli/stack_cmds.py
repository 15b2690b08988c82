"""`opens stack up|down|status|env`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from processor.cli.context import settings_from
from processor.cli.output import console, err_console
from processor.devstack.stack import ComponentStatus, LocalStack
from processor.safe_text import rich_text

stack_app = typer.Typer(
    help="The local development stack: Kafka (KRaft) and moto on loopback.", no_args_is_help=True
)


def _table(rows: list[ComponentStatus]) -> Table:
    table = Table("component", "address", "pid", "state")
    colour = {"healthy": "green", "embedded": "cyan", "running": "yellow", "stopped": "red"}
    for r in rows:
        table.add_row(
            rich_text(r.name),
            rich_text(r.address),
            str(r.pid) if r.pid else "-",
            rich_text(r.state, colour.get(r.state, "white")),
        )
    return table


def _lists_table(data_dir: Path) -> Table:
    """The classifier's network lists and how old the copies in use are (issue #17)."""
    from processor.lists import list_ages

    table = Table("network list", "copy", "age")
    for name, (age, kind) in sorted(list_ages(Path(data_dir)).items()):
        stale = age > 7 * 86400
        table.add_row(
            rich_text(name),
            rich_text(kind),
            rich_text(f"{age / 86400:.1f} d", "yellow" if stale else "green"),
        )
    return table


@stack_app.command()
def up(ctx: typer.Context) -> None:
    """Start Kafka and moto (fetching the Kafka jars once); harmless when already up."""
    stack = LocalStack(settings_from(ctx))
    with err_console.status("starting the local stack (first run fetches Kafka from Maven)…"):
        rows = stack.up()
    console.print(_table(rows))


@stack_app.command()
def down(ctx: typer.Context) -> None:
    """Stop the processes `stack up` started, by PID."""
    stopped = LocalStack(settings_from(ctx)).down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@stack_app.command()
def status(ctx: typer.Context) -> None:
    """Show each component, its address and PID; exits 3 when something is not running."""
    settings = settings_from(ctx)
    rows = LocalStack(settings).status()
    console.print(_table(rows))
    console.print(_lists_table(settings.data_dir))
    if any(r.state in ("stopped", "running") for r in rows):
        raise typer.Exit(3)


@stack_app.command()
def env(ctx: typer.Context) -> None:
    """Print `export` lines for the stack's endpoints: eval "$(opens stack env)"."""
    typer.echo(LocalStack(settings_from(ctx)).export_lines())
