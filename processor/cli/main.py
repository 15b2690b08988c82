"""`opens`: one entry point for every command (DESIGN §4)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from processor.cli import backfill_cmds, clickhouse_cmds, decode_cmds, edge_cmd, reclassify_cmd
from processor.cli.context import settings_from
from processor.cli.infra_cmds import infra_app
from processor.cli.output import err_console, is_terminal
from processor.cli.stack_cmds import stack_app
from processor.errors import OpensError
from processor.safe_text import error_line

app = typer.Typer(
    name="opens",
    help="Email open tracking from CloudFront logs: Kinesis → Kafka/Faust → ClickHouse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(stack_app, name="stack")
clickhouse_cmds.register(app)
decode_cmds.register(app)
backfill_cmds.register(app)
edge_cmd.register(app)
reclassify_cmd.register(app)
app.add_typer(infra_app, name="infra")


@app.callback()
def main(ctx: typer.Context) -> None:
    """Settings come from OPENS_* variables (and .env); built once, here."""
    settings_from(ctx)


@app.command()
def worker(
    ctx: typer.Context,
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", help="debug, info, warning")
    ] = "info",
) -> None:
    """Run the worker: Kinesis source, Faust agents, ClickHouse sink, /healthz and /metrics."""
    from processor.worker import run_worker

    run_worker(settings_from(ctx), loglevel=loglevel)


@app.command()
def demo(
    ctx: typer.Context,
    keep_running: Annotated[
        bool,
        typer.Option(help="leave the stack up afterwards (default: stop what the demo started)"),
    ] = False,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="keep the worker and its dashboard up until Ctrl-C (default: on a terminal)",
        ),
    ] = None,
    subscribers: Annotated[int, typer.Option(min=10, help="simulated recipients")] = 400,
    seed: Annotated[int, typer.Option(help="seed of the generated traffic")] = 2026,
    drop_realtime: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of real-time records the edge loses")
    ] = 0.1,
) -> None:
    """The whole pipeline on the local stack: generated traffic through a local edge, backfill,
    and a report checked against the traffic's truth (exit 1 if any number differs)."""
    from processor.demo.run import DemoOptions, run_demo

    options = DemoOptions(
        seed=seed,
        subscribers=subscribers,
        drop_realtime=drop_realtime,
        serve=is_terminal() if serve is None else serve,
        keep_running=keep_running,
    )
    run_demo(settings_from(ctx), options)


def run() -> None:
    """Console-script entry: user errors become one line on stderr, never a traceback."""
    try:
        app()
    except OpensError as exc:
        err_console.print(error_line(exc.one_line()), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
