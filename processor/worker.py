"""`opens worker`: run the Faust worker in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import logging.config
import signal
import time
from types import FrameType

import faust

from processor.app import create_app
from processor.backoff import backoff_delay
from processor.devstack.kafka import metadata_ok
from processor.errors import OpensError
from processor.logs import logging_config
from processor.settings import Settings
from processor.topics import existing_partitions

log = logging.getLogger(__name__)


def wait_for_kafka(brokers: str, timeout: float) -> None:
    """Return once a broker answers a metadata request; ``OpensError`` after ``timeout``.

    Faust exits with a traceback at start-up when no broker answers, while every later Kafka
    outage is ridden out. A broker that is down or restarting when the worker starts is waited
    for the same way (a log line per attempt); one that stays away is a one-line error and a
    non-zero exit (DESIGN §4). SIGTERM while waiting stops the worker cleanly.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + timeout
    try:
        attempt = 0
        while True:
            ok, why = metadata_ok(brokers)
            if ok:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"Kafka at {brokers} did not answer within {timeout:g}s ({why})"
                raise OpensError(
                    msg, hint="check OPENS_KAFKA_BROKERS, or raise OPENS_KAFKA_START_WAIT"
                )
            attempt += 1
            delay = min(left, backoff_delay(attempt, base=0.5, cap=15.0))
            log.warning(
                "Kafka at %s does not answer (%s, attempt %d), retrying in %.1fs",
                brokers,
                why,
                attempt,
                delay,
            )
            time.sleep(delay)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_worker(settings: Settings, *, loglevel: str = "info") -> None:
    from processor.analytics.access import endpoint_guard
    from processor.analytics.query_server import check_exposure

    check_exposure(endpoint_guard(settings))  # refuse an unauthenticated public endpoint up front
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_config = logging_config(settings.log_format, loglevel)
    if log_config is not None:  # before the first line we log, not only once Faust starts
        logging.config.dictConfig(log_config)
    wait_for_kafka(
        settings.kafka_brokers, settings.kafka_start_wait
    )  # also makes the partition lookup below meaningful
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
