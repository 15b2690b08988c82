"""`opens worker`: run the Faust worker in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import logging.config

import faust

from processor.app import create_app
from processor.logs import logging_config
from processor.settings import Settings
from processor.topics import existing_partitions

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_config = logging_config(settings.log_format, loglevel)
    if log_config is not None:  # before the first line we log, not only once Faust starts
        logging.config.dictConfig(log_config)
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
        logging_config=log_config,
        workdir=str(settings.data_dir),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()  # blocks; handles SIGTERM with a graceful shutdown
