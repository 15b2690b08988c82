"""The file that tells other processes where the chDB owner serves its read-only endpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from processor.settings import Settings


@contextmanager
def published(settings: Settings) -> Iterator[None]:
    path = settings.endpoint_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": settings.query_url, "pid": os.getpid()}))
    tmp.replace(path)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def held_endpoint(settings: Settings) -> str | None:
    """The live endpoint URL of the process holding the embedded ClickHouse, if any."""
    try:
        info = json.loads(settings.endpoint_file.read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return url
