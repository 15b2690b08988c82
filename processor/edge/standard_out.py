"""Standard logs to S3: hourly gzip objects, as CloudFront's legacy standard logging writes them.

Key: ``<prefix><distribution-id>.YYYY-MM-DD-HH.<unique-id>.gz``, named for the UTC hour the
requests happened in; each object starts with the ``#Version``/``#Fields`` header. Lines are
flushed every ``flush_seconds`` (and on shutdown), so an hour gets several objects, as with
CloudFront. An upload that fails keeps its lines for the next flush.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import secrets
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from processor.edge.logged import LoggedRequest
from processor.edge.render import standard_header, standard_line

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


def log_prefix(prefix: str) -> str:
    """CloudFront appends ``/`` to a non-empty prefix that lacks one."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def object_key(prefix: str, distribution_id: str, hour: str) -> str:
    return f"{log_prefix(prefix)}{distribution_id}.{hour}.{secrets.token_hex(4).upper()}.gz"


class StandardLogWriter:
    """Buffers standard log lines per UTC hour and uploads them as gzip objects."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        distribution_id: str,
        *,
        flush_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.distribution_id = distribution_id
        self.flush_seconds = flush_seconds
        self.objects = 0
        self.lines = 0
        self.upload_errors = 0
        self._hours: dict[str, list[str]] = defaultdict(list)
        self._lock = asyncio.Lock()

    def add(self, req: LoggedRequest) -> None:
        hour = time.strftime("%Y-%m-%d-%H", time.gmtime(req.ts_ms // 1000))
        self._hours[hour].append(standard_line(req))

    @property
    def backlog(self) -> int:
        return sum(len(lines) for lines in self._hours.values())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            hours, self._hours = self._hours, defaultdict(list)
            for hour, lines in hours.items():
                if not lines:
                    continue
                body = gzip.compress((standard_header() + "\n".join(lines) + "\n").encode())
                key = object_key(self.prefix, self.distribution_id, hour)
                try:
                    await asyncio.to_thread(
                        self.client.put_object, Bucket=self.bucket, Key=key, Body=body
                    )
                except (ClientError, BotoCoreError) as exc:
                    self.upload_errors += 1
                    log.warning(
                        "standard log upload to s3://%s/%s failed: %s", self.bucket, key, exc
                    )
                    self._hours[hour][:0] = lines  # kept for the next flush
                    continue
                self.objects += 1
                self.lines += len(lines)

    def stats(self) -> dict[str, Any]:
        return {
            "standard_objects": self.objects,
            "standard_lines": self.lines,
            "standard_upload_errors": self.upload_errors,
        }
