"""Decide whether a query may run on the read-only endpoint (a pure function).

chDB shares one engine connection per process, and ClickHouse's ``readonly`` setting cannot be
restored once set, so the endpoint cannot lean on it: the worker in the same process must keep
writing. Instead each query is checked before it runs: one statement, a reading statement kind,
no ``INTO OUTFILE``, no table function that reaches files, networks or programs. Comments and
string literals are blanked first so they can neither hide nor fake a keyword.
"""

from __future__ import annotations

import re

READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# Table functions that read or write outside the database, or run programs.
IO_TABLE_FUNCTIONS = frozenset(
    {
        "file",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "hdfs",
        "hdfscluster",
        "azureblobstorage",
        "azureblobstoragecluster",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "jdbc",
        "odbc",
        "executable",
        "input",
        "python",
        "iceberg",
        "icebergs3",
        "icebergazure",
        "iceberghdfs",
        "icebergcluster",
        "deltalake",
        "hudi",
        "fuzzjson",
        "fuzzquery",
        "arrowflight",
        "ytsaurus",
        "paimon",
        "ai",
    }
)
_LITERALS = re.compile(
    r"""--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|$)|'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.)*"?|`(?:[^`\\]|\\.)*`?""",
    re.S,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def _blank(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("`") or text.startswith('"'):
        return "ident"  # quoted identifiers stay identifiers, their content is not code
    return " "


def refusal(sql: str) -> str | None:
    """``None`` if ``sql`` only reads; otherwise the reason it is refused."""
    code = _LITERALS.sub(_blank, sql)
    statements = [s for s in code.split(";") if s.strip()]
    if len(statements) != 1:
        return "exactly one statement per request"
    first = _WORD.search(statements[0])
    if first is None or first.group(0).upper() not in READ_STATEMENTS:
        kind = first.group(0).upper() if first else "an empty statement"
        return f"{kind} is not a reading statement"
    if re.search(r"\bINTO\s+OUTFILE\b", code, re.I):
        return "INTO OUTFILE writes a file"
    for name in _CALL.findall(code):
        if name.lower() in IO_TABLE_FUNCTIONS:
            return f"the table function {name}() reaches outside the database"
    return None
