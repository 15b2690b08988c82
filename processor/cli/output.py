"""Shared console helpers: one place decides how things look on a terminal."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()
