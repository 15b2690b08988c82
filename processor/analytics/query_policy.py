"""What a reader's session may do: ClickHouse settings, and the engine's own parse of a query.

Read-only is ClickHouse's ``readonly = 1`` on a session of the reader's own, set last, after the
limits: from then on the session can change no setting (not even through a ``SETTINGS``
clause), run no write, no DDL and no table function that reaches files, servers or programs.

The embedded engine (chDB) runs as ClickHouse's *local client*, which has three powers that
``readonly`` does not remove, because a server never gives them to a client: ``INTO OUTFILE``
writes a file, the ``file()`` function reads any file, and ``KILL QUERY`` reaches the writer's
queries (everything runs as one user). These are judged on the engine's own parse tree
(``EXPLAIN AST`` of the statement ClickHouse canonicalised with ``formatQuery``), never on the
text the client sent, so comments, quoting and nesting cannot make the two disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

READONLY_SETTING = ("readonly", "1")

# Root nodes of statements that only read (ClickHouse's AST class names, prefix match).
_READING_ROOTS = ("Select", "Show", "Describe", "Exists", "Explain")
# System tables that show other sessions' queries (the writer's, other analysts' parameters) or
# the process's internals; everything runs as one user in chDB, so the engine cannot tell them
# apart. SHOW PROCESSLIST is the same table.
PRIVATE_SYSTEM_TABLES = frozenset(
    {
        "processes",
        "query_log",
        "query_thread_log",
        "query_views_log",
        "query_metric_log",
        "processors_profile_log",
        "text_log",
        "trace_log",
        "stack_trace",
        "session_log",
        "opentelemetry_span_log",
        "asynchronous_insert_log",
        "asynchronous_inserts",
        "crash_log",
        "error_log",
        "blob_storage_log",
        "s3queue_log",
        "user_processes",
    }
)
_NODE = re.compile(r"^( *)(\w+)(?: (\S+))?")


@dataclass(frozen=True)
class ReaderLimits:
    """Per-query limits of a reader session (``OPENS_QUERY_*`` settings)."""

    max_execution_seconds: float = 30.0
    max_memory_bytes: int = 1 << 30
    max_result_rows: int = 10_000_000
    max_result_bytes: int = 256 << 20
    max_threads: int = 2

    def session_settings(self, *, embedded: bool, tag: str) -> list[tuple[str, str]]:
        """The settings a reader session starts with, ``readonly`` last (it freezes the rest).

        ``tag`` goes into ``log_comment`` so the endpoint can find and kill the query when its
        client goes away."""
        out = [
            ("max_execution_time", f"{self.max_execution_seconds:g}"),
            ("timeout_overflow_mode", "throw"),
            ("max_memory_usage", str(self.max_memory_bytes)),
            ("max_result_rows", str(self.max_result_rows)),
            ("max_result_bytes", str(self.max_result_bytes)),
            ("result_overflow_mode", "throw"),
            ("max_threads", str(self.max_threads)),
            ("log_comment", tag),
            ("allow_introspection_functions", "0"),
        ]
        if embedded:
            # chDB-only: reading the caller's Python objects.
            out.append(("allow_python_table_function", "0"))
        else:
            out.append(("cancel_http_readonly_queries_on_client_close", "1"))
        return [*out, READONLY_SETTING]


def ast_refusal(ast: str) -> str | None:
    """``None`` if the ``EXPLAIN AST`` dump describes a statement a reader may run.

    The dump puts one node per line, indented one space per depth. Values inside a node
    (aliases) can add lines of their own, but never remove a node's line, so a forged line can
    only cause a refusal."""
    lines = [m for m in map(_NODE.match, ast.splitlines()) if m and m.group(2)]
    if not lines:
        return "the statement could not be analysed"
    root_indent, root = lines[0].group(1), lines[0].group(2)
    if not root.startswith(_READING_ROOTS) or root == "ShowProcesslistQuery":
        return f"{root.removesuffix('Query')} is not a reading statement for this endpoint"
    # DESCRIBE (and EXPLAIN) of a table function infers its structure by reading it, a path
    # on which readonly does not stop the table function (a file, a URL: server-side requests).
    inspects = root.startswith(("Describe", "Explain"))
    parents: list[tuple[int, str]] = []
    for m in lines[1:]:
        indent, node, name = m.group(1), m.group(2), (m.group(3) or "")
        while parents and parents[-1][0] >= len(indent):
            parents.pop()
        parent = parents[-1][1] if parents else root
        parents.append((len(indent), node))
        if node == "Literal" and indent == root_indent + " ":  # the output file
            return "INTO OUTFILE writes a file"
        if node == "Function" and name.lower() == "file":
            return "the file() function reads the server's files"
        if inspects and node == "Function" and parent == "TableExpression":
            return f"describing the table function {name}() reaches outside the database"
        if node == "Function" and parent == "TableExpression" and name.lower() == "merge":
            return "merge() can read other sessions' system tables"
        if node == "TableIdentifier" and name.removeprefix("system.") in _private(name):
            return f"{name} shows other sessions' queries"
    return None


def _private(name: str) -> frozenset[str]:
    return PRIVATE_SYSTEM_TABLES if name.startswith("system.") else frozenset()


def trailing_format(canonical: str) -> str | None:
    """The ``FORMAT`` clause of a statement as ``formatQuery`` prints it (its own last line)."""
    last = canonical.rstrip().rsplit("\n", 1)[-1]
    m = re.fullmatch(r"FORMAT (\w+)", last.strip())
    return m.group(1) if m else None


def ast_probe(canonical: str) -> str:
    """The ``EXPLAIN AST`` statement that shows how the engine parsed ``canonical``, its dump in
    ``TSVRaw`` whatever output format the statement itself asks for."""
    body = canonical.rstrip()
    if trailing_format(body):
        body = body.rsplit("\n", 1)[0] if "\n" in body else ""
    return f"EXPLAIN AST {body}\nFORMAT TSVRaw"


def text_param(value: str) -> str:
    """A value for a ``{name:String}`` parameter: ClickHouse reads parameters in its escaped text
    format, so backslash, tab and line breaks are escaped."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )
