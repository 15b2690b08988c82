"""What to backfill: log objects from local paths or S3 prefixes, filtered by their key's date.

Key layouts understood (reference/log-formats.md §b, §c):

- CloudFront standard logging (legacy and v2 to S3): ``<prefix><distribution-id>.YYYY-MM-DD-HH.
  <unique-id>.gz``, named by the UTC hour the requests *happened*; any folder layout above it
  (v2 ``{yyyy}/{MM}/{dd}/{HH}`` or Hive-style ``year=…`` partitions) is irrelevant.
- S3 server access logs, simple prefix: ``<prefix>YYYY-mm-DD-HH-MM-SS-<unique>``, named by
  *delivery* time.
- S3 server access logs, date-partitioned: ``<prefix><account>/<region>/<bucket>/YYYY/MM/DD/
  YYYY-MM-DD-hh-mm-ss-<unique>`` — by event day (``EventTime``, time ``00-00-00``) or delivery.

A key that matches none of them still gets processed when no date filter applies; its format is
then sniffed from the content (``run``), and it is counted as an unknown layout if that fails.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from processor.errors import OpensError

__all__ = [
    "HOUR_SLACK",
    "LogObject",
    "SourceError",
    "in_window",
    "key_layout",
    "list_local",
    "list_s3",
    "list_sources",
    "parse_s3_uri",
]

LogKind = Literal["standard", "s3"]

# CloudFront names a file by the hour its requests happened; an hour either side absorbs
# requests that straddle the boundary (the timestamp is when the edge *finished* responding).
HOUR_SLACK = timedelta(hours=1)
# S3 access logs are named by delivery time and "may contain records of any earlier time",
# usually within a few hours: a day before the name is the window we trust.
S3_DELIVERY_LAG = timedelta(hours=24)

_CLOUDFRONT = re.compile(
    r"(?P<dist>[A-Z0-9]+)\.(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})-(?P<h>\d{2})"
    r"\.[^./]+(?:\.gz)?$"
)
_S3_ACCESS = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})-(?P<H>\d{2})-(?P<M>\d{2})-(?P<S>\d{2})-[A-Za-z0-9]+$"
)
_PARTITIONED = re.compile(r"/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/[^/]+$")


class SourceError(OpensError):
    """A SOURCE argument cannot be listed; ``source`` names it."""

    def __init__(self, message: str, *, source: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.source = source


@dataclass(frozen=True, slots=True)
class LogObject:
    """One log file or S3 object.

    ``uri`` is the manifest key (``s3://bucket/key`` or an absolute path); ``etag`` is S3's ETag
    or, for a local file, its size and modification time, so a changed file is redone.
    ``kind`` is the format the key name implies (``None``: sniff the content). ``start``/``end``
    bound the event times its records can have, as far as the name tells (``None``: unknown).
    """

    uri: str
    etag: str
    size: int
    kind: LogKind | None
    start: datetime | None
    end: datetime | None
    bucket: str = ""
    key: str = ""

    @property
    def is_s3(self) -> bool:
        return bool(self.bucket)


def key_layout(key: str) -> tuple[LogKind | None, datetime | None, datetime | None]:
    """``(kind, earliest event, latest event)`` implied by an object key or file name."""
    name = key.rsplit("/", 1)[-1]
    if m := _CLOUDFRONT.search(name):
        hour = _utc(m["y"], m["m"], m["d"], m["h"])
        if hour is not None:
            return "standard", hour - HOUR_SLACK, hour + timedelta(hours=1) + HOUR_SLACK
    if m := _S3_ACCESS.search(name):
        stamp = _utc(m["y"], m["m"], m["d"], m["H"], m["M"], m["S"])
        if stamp is not None:
            p = _PARTITIONED.search(key)
            event_day = (m["H"], m["M"], m["S"]) == ("00", "00", "00") and p is not None
            if event_day:
                # Date-partitioned by EventTime: every record happened on that UTC day.
                return "s3", stamp - HOUR_SLACK, stamp + timedelta(days=1) + HOUR_SLACK
            return "s3", stamp - S3_DELIVERY_LAG - HOUR_SLACK, stamp + HOUR_SLACK
    return None, None, None


def _utc(*parts: str) -> datetime | None:
    y, mo, d, h, mi, sec = (int(p) for p in (*parts, "0", "0", "0", "0")[:6])
    try:
        return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:
        return None


def in_window(obj: LogObject, since: datetime | None, until: datetime | None) -> bool:
    """Whether ``obj`` may hold requests in ``[since, until)``; unknown dates are kept."""
    if since is not None and obj.end is not None and obj.end <= since:
        return False
    return not (until is not None and obj.start is not None and obj.start >= until)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        msg = f"{uri}: no bucket name"
        raise SourceError(msg, source=uri, hint="write s3://bucket/prefix")
    return bucket, prefix


def _local_object(path: Path) -> LogObject:
    st = path.stat()
    kind, start, end = key_layout(path.name)
    return LogObject(
        str(path.resolve()), f"{st.st_size}-{st.st_mtime_ns}", st.st_size, kind, start, end
    )


def list_local(source: str) -> Iterator[LogObject]:
    """A file, or every file under a folder (sorted, hidden files skipped)."""
    path = Path(source)
    if path.is_file():
        yield _local_object(path)
        return
    if not path.is_dir():
        msg = f"{source}: no such file or folder"
        raise SourceError(msg, source=source)
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield _local_object(Path(root) / name)


def list_s3(client: Any, source: str, *, page_size: int = 1000) -> Iterator[LogObject]:
    """Every object under ``s3://bucket/prefix``, page by page (ListObjectsV2 pagination)."""
    bucket, prefix = parse_s3_uri(source)
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    try:
        for page in pages:
            for item in page.get("Contents", ()):
                key = item["Key"]
                if key.endswith("/"):
                    continue  # a console-made "folder"
                kind, start, end = key_layout(key)
                yield LogObject(
                    f"s3://{bucket}/{key}",
                    str(item.get("ETag", "")).strip('"'),
                    int(item.get("Size", 0)),
                    kind,
                    start,
                    end,
                    bucket=bucket,
                    key=key,
                )
    except Exception as exc:
        if isinstance(exc, OpensError):
            raise
        msg = f"cannot list {source}: {exc}"
        raise SourceError(
            msg, source=source, hint="check the bucket name, AWS credentials and AWS_ENDPOINT_URL"
        ) from None


def list_sources(
    sources: list[str],
    *,
    s3_client: Any = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = 1000,
) -> Iterator[LogObject]:
    """Every object of every SOURCE inside the date window, each once, in listing order."""
    seen: set[str] = set()
    for source in sources:
        if source.startswith("s3://"):
            if s3_client is None:
                msg = f"{source}: no S3 client"
                raise SourceError(msg, source=source)
            found = list_s3(s3_client, source, page_size=page_size)
        else:
            found = list_local(source)
        for obj in found:
            if obj.uri not in seen and in_window(obj, since, until):
                seen.add(obj.uri)
                yield obj
