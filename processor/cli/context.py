"""Settings are built once, in the root callback, and handed to commands via the context."""

from __future__ import annotations

import typer

from processor.settings import Settings, load_settings


def settings_from(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = load_settings()
    return root.obj
