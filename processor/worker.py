"""`opens worker`: run the Faust worker in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import faust

from processor.app import create_app
from processor.settings import Settings


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        workdir=str(settings.data_dir),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()  # blocks; handles SIGTERM with a graceful shutdown
