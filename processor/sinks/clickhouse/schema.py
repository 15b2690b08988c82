"""Numbered SQL migrations with a version table, applied idempotently."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The migration's statements; the database is the bound parameter ``{db:Identifier}``."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in body.split(";") if s.strip()]


def load_migrations() -> list[Migration]:
    folder = resources.files("processor.sinks.clickhouse").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    return sorted(found, key=lambda mig: mig.version)


def applied_versions(client: Any, database: str) -> set[int]:
    rows = client.query(
        "SELECT version FROM {db:Identifier}.schema_migrations FINAL", parameters={"db": database}
    ).result_rows
    return {int(r[0]) for r in rows}


def apply_migrations(client: Any, database: str) -> list[Migration]:
    """Create the database and apply every migration not yet recorded; returns those applied."""
    db = {"db": database}
    client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters=db)
    client.command(
        "CREATE TABLE IF NOT EXISTS {db:Identifier}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
        parameters=db,
    )
    done = applied_versions(client, database)
    applied = []
    for mig in load_migrations():
        if mig.version in done:
            continue
        for statement in mig.statements():
            client.command(statement, parameters=db)
        client.insert(
            "schema_migrations",
            [[mig.version, mig.name]],
            column_names=["version", "name"],
            database=database,
        )
        applied.append(mig)
    return applied
