"""``opens edge``: the local CloudFront stand-in (development and tests only)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from processor.cli.context import settings_from
from processor.cli.output import err_console

__all__ = ["register"]


def edge_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="address to listen on (loopback)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 = any free port")] = 8787,
    drop_realtime: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="fraction of real-time records to drop (standard log keeps all)"
        ),
    ] = 0.0,
    duplicate_realtime: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="fraction of real-time records put twice"),
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(help="seed for which records are dropped/duplicated")
    ] = None,
    flush_seconds: Annotated[
        float, typer.Option(min=0.1, help="seconds between standard log objects")
    ] = 5.0,
    distribution_id: Annotated[
        str | None,
        typer.Option(help="distribution id in log names (default: the one infra created)"),
    ] = None,
) -> None:
    """DEVELOPMENT/TESTS ONLY: a local stand-in for a CloudFront edge.

    Serves the pixel like CloudFront (GIF, x-amz-cf-id, no-cache) and logs every request:
    a real-time record to the Kinesis stream (OPENS_KINESIS_STREAM, OPENS_REALTIME_FIELDS) and a
    line in an hourly gzip standard log in the log bucket (OPENS_INFRA_LOG_BUCKET/_LOG_PREFIX).
    Point AWS_ENDPOINT_URL at the local emulator (`eval "$(opens stack env)"`).
    X-Forwarded-For sets the simulated viewer's address. Never expose it to real traffic.
    """
    from infra.settings import load_infra_settings
    from processor.edge.setup import build_edge

    settings = settings_from(ctx)
    edge = build_edge(
        settings,
        load_infra_settings(),
        distribution_id=distribution_id,
        host=host,
        port=port,
        drop_realtime=drop_realtime,
        duplicate_realtime=duplicate_realtime,
        seed=seed,
        flush_seconds=flush_seconds,
    )

    async def run() -> None:
        url = await edge.start()
        err_console.print(
            f"edge (dev only): {url}{settings.pixel_path} → Kinesis {settings.kinesis_stream}, "
            f"s3://{edge.config.log_bucket}/{edge.config.log_prefix}  (Ctrl-C stops)",
            highlight=False,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await edge.stop()  # flushes both logs
            err_console.print(f"edge stopped: {edge.stats()}", highlight=False)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def register(app: typer.Typer) -> None:
    app.command("edge")(edge_cmd)
