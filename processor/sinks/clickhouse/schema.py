"""Numbered SQL migrations with a version table, applied idempotently."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, database: str) -> list[str]:
        """The statements with ``{db}`` replaced by the quoted database name.

        The name is substituted as text, not bound: ClickHouse reads ``{x:Type}`` inside a view
        definition as a view parameter. ``database`` is a validated identifier (settings).
        """
        if not _IDENT.match(database):
            msg = f"invalid database name {database!r}"
            raise ValueError(msg)
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        body = body.replace("{db}", f"`{database}`")
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


def apply_migrations(client: Any, database: str, upto: int | None = None) -> list[Migration]:
    """Create the database and apply every migration not yet recorded, up to version ``upto``
    (default: all); returns those applied."""
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
        if mig.version in done or (upto is not None and mig.version > upto):
            continue
        for statement in mig.statements(database):
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[mig.version, mig.name]],
            column_names=["version", "name"],
            database=database,
        )
        applied.append(mig)
    return applied


_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<db>`\w+`)\.(?P<name>\w+)\s*(?P<body>\(.*?\))\s*"
    r"ENGINE = (?P<engine>\w+)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.S,
)
_MV = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (?P<db>`\w+`)\.(?P<name>\w+) TO `\w+`\.(?P<to>\w+) AS"
    r"(?P<select>.*)$",
    re.S,
)
_DROP_VIEW = re.compile(r"^DROP VIEW IF EXISTS (?P<db>`\w+`)\.(?P<name>\w+)$")
_DROP_TABLE = re.compile(r"^DROP TABLE IF EXISTS (?P<db>`\w+`)\.(?P<name>\w+)$")
_EXCHANGE = re.compile(r"^EXCHANGE TABLES (?P<db>`\w+`)\.(?P<a>\w+) AND `\w+`\.(?P<b>\w+)$")
_ALTER = re.compile(r"^ALTER TABLE (?P<db>`\w+`)\.(?P<name>\w+)\s+(?P<rest>.*)$", re.S)
# Rows of one subscriber stay on one shard, so per-shard first opens and request-id sets are
# complete and merging shards never counts a request twice.
# The ingest table is sharded like `hits` so its view writes each row to its own shard's
# `hits_local`; a subscriber's suppression rows stay together so the newest one wins on one shard.
_SHARDING_KEY = {
    "hits": "cityHash64(cid, sid)",
    "first_opens": "cityHash64(cid, sid)",
    "hits_next": "cityHash64(cid, sid)",
    "opener_state": "cityHash64(cid, sid)",
    "hits_ingest": "cityHash64(cid, sid)",
    "forgotten_subscribers": "cityHash64(sid)",
}
# The view's source table, the first FROM: the local one on each shard. Subqueries after it
# (the suppression list) keep reading the Distributed table, so every shard sees the whole list.
_MV_SOURCE = re.compile(r"FROM (`\w+`)\.(\w+)\b")


def render_cluster(database: str, cluster: str) -> list[str]:
    """The same migrations for a cluster: ``ON CLUSTER``, ``Replicated*MergeTree`` local tables
    named ``<table>_local`` and ``Distributed`` tables under the original names, so views and
    writers are unchanged."""
    if not _IDENT.match(cluster):
        msg = f"invalid cluster name {cluster!r}"
        raise ValueError(msg)
    on = f"ON CLUSTER `{cluster}`"  # DDL only: INSERTs move data through Distributed tables
    db = f"`{database}`"
    out = [f"CREATE DATABASE IF NOT EXISTS {db} {on}"]
    for mig in load_migrations():
        for stmt in mig.statements(database):
            if t := _CREATE_TABLE.match(stmt):
                name, local = t["name"], t["name"] + "_local"
                args = ", ".join(
                    a
                    for a in (
                        f"'/clickhouse/tables/{{shard}}/{database}/{local}'",
                        "'{replica}'",
                        t["args"] or "",
                    )
                    if a
                )
                # A Null table stores nothing, so there is nothing to replicate.
                engine = "Null" if t["engine"] == "Null" else f"Replicated{t['engine']}({args})"
                out.append(
                    f"CREATE TABLE IF NOT EXISTS {db}.{local} {on} {t['body']}\n"
                    f"ENGINE = {engine}{t['rest']}"
                )
                key = _SHARDING_KEY.get(name, "rand()")
                out.append(
                    f"CREATE TABLE IF NOT EXISTS {db}.{name} {on} AS {db}.{local}\n"
                    f"ENGINE = Distributed(`{cluster}`, {db}, {local}, {key})"
                )
            elif m := _MV.match(stmt):
                select = _MV_SOURCE.sub(r"FROM \1.\2_local", m["select"], count=1)
                out.append(
                    f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{m['name']} {on} "
                    f"TO {db}.{m['to']}_local AS{select}"
                )
            elif d := _DROP_VIEW.match(stmt):
                out.append(f"DROP VIEW IF EXISTS {db}.{d['name']} {on}")
            elif d := _DROP_TABLE.match(stmt):
                # A table is its local storage and the Distributed table over it; a name that
                # was a plain view on one node is dropped the same way.
                out.append(f"DROP TABLE IF EXISTS {db}.{d['name']} {on}")
                out.append(f"DROP TABLE IF EXISTS {db}.{d['name']}_local {on}")
            elif x := _EXCHANGE.match(stmt):
                # Only the storage: each Distributed table keeps pointing at its local name.
                out.append(f"EXCHANGE TABLES {db}.{x['a']}_local AND {db}.{x['b']}_local {on}")
            elif stmt.startswith("INSERT INTO"):
                # Data moves once, from one node, through the Distributed tables.
                out.append(stmt)
            elif a := _ALTER.match(stmt):
                # The local tables hold the columns; the Distributed table mirrors them.
                for table in (f"{a['name']}_local", a["name"]):
                    out.append(f"ALTER TABLE {db}.{table} {on} {a['rest']}")
            elif stmt.startswith("CREATE OR REPLACE VIEW"):
                out.append(re.sub(r"^(CREATE OR REPLACE VIEW `\w+`\.\w+)", rf"\1 {on}", stmt))
            else:  # pragma: no cover - a new kind of statement must be taught here
                msg = f"render_cluster does not know how to distribute: {stmt[:60]}"
                raise ValueError(msg)
    return out


def apply_hits_ttl(client: Any, database: str, days: int) -> str:
    """Raw-hit retention. The views keep every number: each day is sealed before its raw rows
    may go (migration 0011), and a sealed day past the retention is read from its seal."""
    from processor.analytics.forget import wait_for_inserts
    from processor.sinks.clickhouse.seal import seal_quiet_days

    ddl = client.query(
        "SELECT create_table_query FROM system.tables "
        "WHERE database = {db:String} AND name = 'hits'",
        parameters={"db": database},
    ).result_rows[0][0]
    has_ttl = " TTL " in ddl
    if days > 0:
        # No margin (a backfill may have just written a day old enough to expire); instead the
        # inserts running when the seal's time is taken are waited for, so none is missed.
        seal_quiet_days(
            client,
            database,
            margin_seconds=0,
            settle=lambda: wait_for_inserts(client, timeout=120.0),
        )
        if f"toIntervalDay({days})" in ddl:
            return "unchanged"
        client.insert("raw_retention", [[days]], column_names=["days"], database=database)
        client.command(
            f"ALTER TABLE `{database}`.hits MODIFY TTL toDateTime(ts) + INTERVAL {int(days)} DAY"
        )
        return f"raw hits kept {days} days"
    if has_ttl:
        client.command(f"ALTER TABLE `{database}`.hits REMOVE TTL")
        client.insert("raw_retention", [[0]], column_names=["days"], database=database)
        return "raw hits kept forever"
    return "unchanged"
