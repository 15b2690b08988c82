"""Real-time records to Kinesis: batched ``PutRecords``, failed records retried with back-off.

CloudFront's real-time logs are best effort, and so is this: a record that still fails after
every retry is counted and logged, never silently lost — the same request is in the standard
log, which the backfill reconciles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from processor.backoff import backoff_delay

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500  # the PutRecords limit
THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


@dataclass
class PutResult:
    put: int = 0
    retried: int = 0
    failed: int = 0


def put_records(
    client: KinesisClient,
    stream: str,
    records: list[PutRecordsRequestEntryTypeDef],
    *,
    attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> PutResult:
    """Put ``records`` (at most 500); retry the ones Kinesis refused until ``attempts`` run out."""
    result = PutResult()
    pending = records
    for attempt in range(1, attempts + 1):
        try:
            resp = client.put_records(StreamName=stream, Records=pending)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in THROTTLED:
                raise
            failed = pending
        except BotoCoreError as exc:  # connection refused or reset: the stream may come back
            log.warning("PutRecords to %s failed: %s", stream, exc)
            failed = pending
        else:
            failed = [
                rec
                for rec, out in zip(pending, resp["Records"], strict=True)
                if out.get("ErrorCode")
            ]
            result.put += len(pending) - len(failed)
        if not failed:
            return result
        if attempt < attempts:
            result.retried += len(failed)
            sleep(backoff_delay(attempt, base=0.05, cap=5.0))
        pending = failed
    result.failed = len(pending)
    log.error("gave up on %d real-time records after %d attempts", len(pending), attempts)
    return result


class RealtimeShipper:
    """Collects records and ships them in batches from a background task."""

    def __init__(
        self, client: KinesisClient, stream: str, *, interval: float = 0.2, attempts: int = 8
    ) -> None:
        self.client = client
        self.stream = stream
        self.interval = interval
        self.attempts = attempts
        self.totals = PutResult()
        self._pending: list[PutRecordsRequestEntryTypeDef] = []
        self._lock = asyncio.Lock()

    def add(self, data: bytes, partition_key: str) -> None:
        self._pending.append({"Data": data, "PartitionKey": partition_key})

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            while self._pending:
                batch = self._pending[:MAX_RECORDS_PER_CALL]
                del self._pending[:MAX_RECORDS_PER_CALL]
                out = await asyncio.to_thread(
                    put_records, self.client, self.stream, batch, attempts=self.attempts
                )
                self.totals.put += out.put
                self.totals.retried += out.retried
                self.totals.failed += out.failed

    def stats(self) -> dict[str, Any]:
        return {
            "realtime_put": self.totals.put,
            "realtime_retried": self.totals.retried,
            "realtime_failed": self.totals.failed,
        }
