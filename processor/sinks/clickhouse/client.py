"""One way to reach ClickHouse: embedded chDB (``chdb://path``) or a server (``http(s)://``)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from processor.errors import OpensError

_EMBEDDED_OPEN = threading.Lock()
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ClickHouseTarget:
    dsn: str
    database: str

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    @classmethod
    def parse(cls, dsn: str, default_database: str) -> ClickHouseTarget:
        """``http://u:p@host:8123/opens`` names its database in the path; chDB URLs do not."""
        if dsn.startswith("chdb://"):
            return cls(dsn, default_database)
        database = urlsplit(dsn).path.strip("/") or default_database
        if not _IDENT.match(database):
            msg = f"invalid ClickHouse database name {database!r} in OPENS_CLICKHOUSE_URL"
            raise OpensError(msg)
        return cls(dsn, database)


def connect(target: ClickHouseTarget) -> Any:
    """A clickhouse-connect client; chDB is in-process and one data directory per process."""
    import clickhouse_connect

    try:
        if target.embedded:
            # The sink's thread and the query endpoint's may open the engine at the same moment;
            # chDB's one-per-process engine start is not safe to race.
            with _EMBEDDED_OPEN:
                return clickhouse_connect.get_client(dsn=target.dsn)
        parts = urlsplit(target.dsn)
        return clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            # Percent-encoded in the URL, as any URL's credentials are.
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=parts.scheme == "https",
        )
    except Exception as exc:
        where = target.dsn if target.embedded else urlsplit(target.dsn).hostname
        hint = "another process holds this chDB directory; stop it or use its query endpoint"
        if "lock" not in str(exc).lower():
            hint = "check OPENS_CLICKHOUSE_URL and that the server is up"
        msg = f"cannot open ClickHouse at {where}: {exc}"
        raise OpensError(msg, hint=hint) from None
