"""`opens stack up|down|status|env`."""

from __future__ import annotations

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
    rows = LocalStack(settings_from(ctx)).status()
    console.print(_table(rows))
    if any(r.state in ("stopped", "running") for r in rows):
        raise typer.Exit(3)


@stack_app.command()
def env(ctx: typer.Context) -> None:
    """Print `export` lines for the stack's endpoints: eval "$(opens stack env)"."""
    typer.echo(LocalStack(settings_from(ctx)).export_lines())
