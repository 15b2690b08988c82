"""``opens pixel-url``, ``opens parse`` and ``opens data update`` (DESIGN §4).

Thin wrappers over ``processor.core``: argument handling, settings, output and the one-line error
messages. ``register(app)`` adds the commands to the main ``opens`` application.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from processor.cli.context import settings_from
from processor.core.context import DecodeContext
from processor.core.data import APPLE_EGRESS_URL
from processor.core.fields import UnknownFieldError, canonical_order
from processor.core.logparse import BlockDecoder, ParseSummary, block_decoder, decode_blocks
from processor.core.native import ndjson
from processor.core.pixel import AmbiguousValueError, pixel_url, snippet
from processor.core.reader import READ_ERROR, ReadStopped, iter_line_blocks, open_input
from processor.errors import OpensError
from processor.safe_text import visible

__all__ = ["EXIT_DAMAGED", "register"]

EXIT_DAMAGED = 3  # ``opens parse``: a FILE was read only up to a damage (same code as backfill's)


class LogFormatChoice(StrEnum):
    realtime = "realtime"
    standard = "standard"
    s3 = "s3"


class TemplateChoice(StrEnum):
    erb = "erb"
    jinja = "jinja"


class SchemeChoice(StrEnum):
    v1 = "v1"
    v2 = "v2"


def _ambiguous(exc: AmbiguousValueError) -> OpensError:
    # One line, exit 2 like other bad arguments (DESIGN §4).
    err = OpensError("cannot sign with v1: a value contains a newline", hint="use --scheme v2")
    err.exit_code = 2
    return err


def _settings_context(
    ctx: typer.Context, pixel_only: bool = True
) -> tuple[DecodeContext, tuple[str, ...], Path]:
    """The decode context, real-time fields and data dir from the settings (``OPENS_*``)."""
    settings = settings_from(ctx)
    decode_ctx = dataclasses.replace(
        settings.decode_context(), data_dir=settings.data_dir, pixel_only=pixel_only
    )
    return decode_ctx, tuple(settings.realtime_fields), Path(settings.data_dir)


def pixel_url_cmd(
    ctx: typer.Context,
    sid: Annotated[
        str | None,
        typer.Option(
            "--sid",
            help="Subscriber id. With --template: the template expression that yields it.",
        ),
    ] = None,
    cid: Annotated[str, typer.Option("--cid", help="Campaign id.")] = "",
    cat: Annotated[str, typer.Option("--cat", help="Category (may be empty).")] = "",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="OPENS_PIXEL_BASE_URL",
            help="Scheme and host serving the pixel, e.g. https://d111111abcdef8.cloudfront.net",
        ),
    ] = None,
    template: Annotated[
        TemplateChoice | None,
        typer.Option("--template", help="Print the <img> snippet for an erb or jinja template."),
    ] = None,
    scheme: Annotated[
        SchemeChoice,
        typer.Option("--scheme", help="Signature scheme: v1 (DESIGN §3) or v2 (any value)."),
    ] = SchemeChoice.v1,
) -> None:
    """Print a signed pixel URL (or, with --template, the snippet a mailer pastes)."""
    if not cid:
        msg = "is required"
        raise typer.BadParameter(msg, param_hint="--cid")
    if not base_url:
        msg = "is required (or set OPENS_PIXEL_BASE_URL)"
        raise typer.BadParameter(msg, param_hint="--base-url")
    if not base_url.startswith(("http://", "https://")):
        msg = "must start with http:// or https://"
        raise typer.BadParameter(msg, param_hint="--base-url")
    decode_ctx, _, _ = _settings_context(ctx)
    if template is not None:
        try:
            text = snippet(
                template.value,
                base_url,
                cid,
                cat,
                sid_expr=sid,
                pixel_path=decode_ctx.pixel_path,
                scheme=scheme.value,
            )
        except AmbiguousValueError as exc:
            raise _ambiguous(exc) from None
        typer.echo(text, nl=False)
        return
    if not sid:
        msg = "is required"
        raise typer.BadParameter(msg, param_hint="--sid")
    if not decode_ctx.secrets:
        typer.echo(
            "opens: OPENS_PIXEL_SECRETS is not set: the URL is unsigned (signature 'missing')",
            err=True,
        )
    secret = decode_ctx.secrets[0] if decode_ctx.secrets else None
    try:
        url = pixel_url(
            base_url,
            sid,
            cid,
            cat,
            secret=secret,
            pixel_path=decode_ctx.pixel_path,
            scheme=scheme.value,
        )
    except AmbiguousValueError as exc:
        raise _ambiguous(exc) from None
    typer.echo(url)


def parse_cmd(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(help="Log files (plain or gzip); '-' reads stdin.")],
    log_format: Annotated[
        LogFormatChoice, typer.Option("--format", help="Log format of every FILE.")
    ],
    fields: Annotated[
        str | None,
        typer.Option(
            "--fields",
            help="Real-time fields that were selected, comma-separated, any order "
            "(default: OPENS_REALTIME_FIELDS).",
        ),
    ] = None,
    all_requests: Annotated[
        bool,
        typer.Option("--all", help="One object per request, not only pixel hits."),
    ] = False,
) -> None:
    """Decode log files to NDJSON on stdout: one object per pixel hit (DESIGN §2), with --all
    one per request. Bad lines and pixel requests that are not hits (not_a_hit: status 404 …)
    are counted by reason on stderr, never fatal.

    Exit status:
    0 every FILE was read to its end (bad lines included);
    1 a FILE cannot be opened;
    3 a FILE was read only up to a damage (truncated or corrupt gzip, read error): the lines before it were decoded, as opens backfill does.
    """  # noqa: E501 - help text: typer keeps these line breaks
    decode_ctx, default_fields, _ = _settings_context(ctx, pixel_only=not all_requests)
    selected: tuple[str, ...] = default_fields
    if fields is not None:
        try:
            selected = canonical_order(fields.split(","))
        except UnknownFieldError as exc:
            raise typer.BadParameter(str(exc), param_hint="--fields") from None
        if not selected:
            msg = "is empty"
            raise typer.BadParameter(msg, param_hint="--fields")
    decode, new_file = block_decoder(log_format.value, decode_ctx, fields=selected)
    summary = ParseSummary()
    out = sys.stdout.buffer
    try:
        for name in files:
            _parse_one(name, decode, new_file, summary, out, only_hits=not all_requests)
        out.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, like other Unix filters.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    finally:
        typer.echo(f"opens parse: {summary.render()}", err=True)
    if summary.unreadable:
        raise typer.Exit(1)
    if summary.damaged:
        raise typer.Exit(EXIT_DAMAGED)


def _parse_one(
    name: str,
    decode: BlockDecoder,
    new_file: Callable[[], None],
    summary: ParseSummary,
    out: BinaryIO,
    *,
    only_hits: bool = True,
) -> None:
    try:
        stream = open_input(name)
    except OSError as exc:
        typer.echo(f"opens: cannot open {visible(name)}: {exc.strerror or exc}", err=True)
        summary.unreadable.append(name)
        return
    new_file()
    start = summary.lines
    try:
        # One write per block of lines read (about 1 MiB of log): hits are never held longer.
        blocks = iter_line_blocks(stream)
        for hits in decode_blocks(decode, blocks, summary, name, only_hits=only_hits):
            if hits:
                out.write(ndjson(hits))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        # Damaged gzip or a failed read: what came before is decoded (the shared reader salvages
        # it exactly like backfill), the cut line is not, and the file is reported as damaged.
        reason = exc.reason if isinstance(exc, ReadStopped) else READ_ERROR
        read = summary.lines - start
        where = f"{name}: {reason} after line {read:,}"
        typer.echo(
            f"opens: {visible(where)}: the {read:,} lines before it were decoded ({exc})", err=True
        )
        summary.damaged.append(where)
    finally:
        stream.close()


def data_update_cmd(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", help="Where Apple publishes its egress list.")
    ] = APPLE_EGRESS_URL,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="NAME=URL: fetch list NAME from URL (repeatable)."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per list.")] = 60.0,
) -> None:
    """Download every network list the classifier uses (Apple, Google, Microsoft EOP, gateways)
    into the data dir, with version and date; the shipped snapshots stay in use for any that
    fails."""
    from processor.lists import configured_sources, http_fetch, update_lists

    settings = settings_from(ctx)
    data_dir = Path(settings.data_dir)
    sources = configured_sources(settings.gateway_list_url)
    sources["apple-egress"] = url
    for item in source or []:
        name, sep, value = item.partition("=")
        if not sep or name not in sources:
            msg = f"--source {item!r}: expected NAME=URL with NAME one of {', '.join(sources)}"
            raise typer.BadParameter(msg)
        sources[name] = value

    results = update_lists(data_dir, http_fetch(timeout), sources)
    for r in results:
        if r.ok:
            typer.echo(f"{r.name}: saved {r.entries:,} entries (version {visible(r.version)})")
        else:
            typer.echo(f"{r.name}: not updated: {visible(r.detail)}", err=True)
    if not any(r.ok for r in results):
        msg = "no list could be downloaded"
        raise OpensError(msg, hint="offline? the classifier keeps using the shipped snapshots")


def register(app: typer.Typer) -> None:
    """Add ``pixel-url``, ``parse`` and ``data update`` to the ``opens`` application."""
    app.command("pixel-url")(pixel_url_cmd)
    app.command("parse")(parse_cmd)
    data_app = typer.Typer(help="Reference data used by the classifier.", no_args_is_help=True)
    data_app.command("update")(data_update_cmd)
    app.add_typer(data_app, name="data")
