"""`opens infra plan|apply|destroy|status`: AWS provisioning (DESIGN §4, §6).

Settings: the pipeline's ``OPENS_*`` (stream name, real-time fields, pixel path) plus
``OPENS_INFRA_*`` (names, region, stream mode …); AWS credentials and ``AWS_ENDPOINT_URL`` come
from boto3's own chain. Errors print one line and exit non-zero, as everywhere in ``opens``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from infra import runner
from infra.errors import MissingApi
from infra.plan import Change, pending, plan_json, summary
from infra.resources.base import Env, StatusRow
from infra.settings import InfraSettings, load_infra_settings
from processor.cli.context import settings_from
from processor.cli.output import console, err_console, is_terminal
from processor.errors import OpensError
from processor.safe_text import error_line, json_safe, rich_text, visible

infra_app = typer.Typer(
    help="AWS provisioning: pixel and log buckets, CloudFront, Kinesis, IAM, real-time logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_COLOUR = {
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "none": "dim",
    "unsupported": "magenta",
    "present": "green",
    "missing": "red",
    "not managed": "yellow",
}


class PlanFormat(StrEnum):
    table = "table"
    json = "json"


def _one_line_errors(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Print an ``OpensError`` as one line and exit with its code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except OpensError as exc:
            err_console.print(error_line(exc.one_line()), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _infra_settings(ctx: typer.Context) -> InfraSettings:
    root = ctx.find_root()
    cached = root.meta.get("infra_settings")
    if not isinstance(cached, InfraSettings):
        cached = root.meta["infra_settings"] = load_infra_settings()
    return cached


def _env(ctx: typer.Context, *, allow_missing_apis: bool = False) -> Env:
    return runner.build_env(
        settings_from(ctx), _infra_settings(ctx), allow_missing_apis=allow_missing_apis
    )


def _table(changes: Sequence[Change]) -> Table:
    table = Table("resource", "name", "action", "details")
    for c in changes:
        table.add_row(
            rich_text(c.resource),
            rich_text(c.name),
            rich_text(c.action, _COLOUR[c.action]),
            rich_text(", ".join(c.details)),
        )
    return table


@contextmanager
def _progress(verb: str) -> Iterator[Callable[[Change], None]]:
    """On a terminal: a spinner and one line per finished resource; piped: silent."""
    if not is_terminal():
        yield lambda _: None
        return
    with err_console.status(f"{verb}…") as spinner:

        def report(change: Change) -> None:
            detail = f" ({', '.join(change.details)})" if change.details else ""
            colour = _COLOUR[change.action]
            err_console.print(
                Text.assemble(
                    "  ",
                    (f"{change.action:>11}", colour),
                    visible(f" {change.resource} {change.name}{detail}"),
                ),
                highlight=False,
            )
            spinner.update(f"{verb}… ({change.resource} done)")

        yield report


@infra_app.command()
@_one_line_errors
def plan(
    ctx: typer.Context,
    fmt: Annotated[
        PlanFormat, typer.Option("--format", help="table, or json: [{resource, name, action}]")
    ] = PlanFormat.table,
) -> None:
    """Show what `apply` would create, change or leave alone; changes nothing."""
    changes = runner.plan(_env(ctx))
    if fmt is PlanFormat.json:
        typer.echo(json_safe(json.dumps(plan_json(changes), indent=2)))
        return
    console.print(_table(changes))
    console.print(summary(changes))


@infra_app.command()
@_one_line_errors
def apply(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    allow_missing_apis: Annotated[
        bool,
        typer.Option(
            help="go on without what the endpoint does not implement (moto: real-time log configs)"
        ),
    ] = False,
) -> None:
    """Make the account match the settings, idempotently: create what is missing, fix drift."""
    env = _env(ctx, allow_missing_apis=allow_missing_apis)
    planned = runner.plan(env)
    missing = [c for c in planned if c.action == "unsupported"]
    if missing and not allow_missing_apis:
        raise MissingApi(resource=missing[0].resource, api=missing[0].details[0])
    if not pending(planned):
        console.print(summary(planned))
        _outputs(env.stream_name, env.distribution_domain)
        return
    console.print(_table(planned))
    if not yes:
        typer.confirm("Apply these changes?", abort=True)
    with _progress("applying") as report:
        applied = runner.apply(env, planned=planned, progress=report)
    console.print(summary(applied.changes, done=True))
    _outputs(applied.stream, env.distribution_domain)


def _outputs(stream: str, domain: str | None) -> None:
    base = f"https://{domain}" if domain else "(no distribution)"
    console.print(rich_text(f"pixel base URL: {base}"), highlight=False)
    console.print(rich_text(f"kinesis stream: {stream}"), highlight=False)


@infra_app.command()
@_one_line_errors
def destroy(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    keep_logs: Annotated[
        bool, typer.Option(help="keep the standard-log bucket and the logs in it")
    ] = False,
) -> None:
    """Remove what `apply` created (tagged), newest first; restore an attached distribution."""
    env = _env(ctx)
    planned = runner.destroy(env, keep_logs=keep_logs, dry_run=True)
    if not pending(planned):
        console.print("nothing to destroy")
        return
    console.print(_table(planned))
    if not yes:
        typer.confirm("Destroy these resources?", abort=True)
    with _progress("destroying") as report:
        done = runner.destroy(env, keep_logs=keep_logs, progress=report)
    console.print(f"destroyed: {sum(c.action == 'delete' for c in done)} resource(s)")


def _status_table(rows: Sequence[StatusRow]) -> Table:
    table = Table("resource", "name", "state", "details")
    for r in rows:
        table.add_row(
            rich_text(r.resource),
            rich_text(r.name),
            rich_text(r.state, _COLOUR[r.state]),
            rich_text(r.detail),
        )
    return table


@infra_app.command()
@_one_line_errors
def status(ctx: typer.Context) -> None:
    """Show each resource and whether real-time records are flowing into the stream."""
    env = _env(ctx)
    rows = runner.status(env)
    console.print(_status_table(rows))
    stream_present = any(r.resource == "kinesis-stream" and r.state == "present" for r in rows)
    flowing = runner.records_flowing(env) if stream_present else "no stream"
    console.print(rich_text(f"real-time records: {flowing}"), highlight=False)
