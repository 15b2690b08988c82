"""`opens worker`: run the Faust worker in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import faust

from processor.app import create_app
from processor.settings import Settings
from processor.topics import existing_partitions

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    hits_n = existing_partitions(settings.kafka_brokers, settings.topic_hits)
    if hits_n is not None and hits_n != settings.topic_partitions:
        log.warning(
            "topic %s already has %d partitions (OPENS_TOPIC_PARTITIONS=%d): using %d",
            settings.topic_hits,
            hits_n,
            settings.topic_partitions,
            hits_n,
        )
    app = create_app(settings, hits_partitions=hits_n)
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        workdir=str(settings.data_dir),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()  # blocks; handles SIGTERM with a graceful shutdown
