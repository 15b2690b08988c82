"""Pure parts of the endpoint's safety: the judgement on the engine's parse tree, the guard."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.analytics.query_policy import (
    ReaderLimits,
    ast_probe,
    ast_refusal,
    text_param,
    trailing_format,
)
from processor.analytics.web_guard import Guard, credentials

pytestmark = pytest.mark.unit

SELECT = (
    "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n"
)
OUTFILE = (
    "SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n  SelectQuery\n"
    " Literal '/tmp/x'\n"
)
FILE_CALL = SELECT + "   ExpressionList (children 1)\n    Function FILE (alias f) (children 1)\n"


def test_the_parse_tree_decides() -> None:
    assert ast_refusal(SELECT) is None
    assert ast_refusal("ShowTables\n") is None
    assert ast_refusal("DescribeQuery (children 1)\n TableExpression (children 1)\n") is None
    assert ast_refusal("Explain EXPLAIN (children 1)\n" + " " + SELECT) is None
    assert "OUTFILE" in (ast_refusal(OUTFILE) or "")
    assert "file()" in (ast_refusal(FILE_CALL) or "")
    assert "KillQuery" in (
        ast_refusal("KillQueryQuery Literal_UInt64_1 ASYNC (children 1)\n") or ""
    )
    assert ast_refusal("CreateQuery a (children 3)\n") is not None
    assert ast_refusal("UseQuery system (children 1)\n") is not None
    assert ast_refusal("") is not None


@given(st.text(max_size=200))
def test_extra_lines_can_only_refuse(noise: str) -> None:
    """Aliases can add lines to the dump but never remove a node's line."""
    assert ast_refusal(OUTFILE + noise) is not None
    assert ast_refusal(FILE_CALL + noise) is not None


def test_probe_and_format() -> None:
    assert trailing_format("SELECT 1\nFORMAT JSONEachRow") == "JSONEachRow"
    assert trailing_format("SELECT 'FORMAT JSON'") is None
    assert ast_probe("SELECT 1\nFORMAT Native") == "EXPLAIN AST SELECT 1\nFORMAT TSVRaw"
    assert ast_probe("SELECT 1") == "EXPLAIN AST SELECT 1\nFORMAT TSVRaw"
    assert text_param("a\\b\tc\nd\r") == "a\\\\b\\tc\\nd\\r"


def test_readonly_is_the_last_setting() -> None:
    for embedded in (True, False):
        pairs = ReaderLimits().session_settings(embedded=embedded, tag="t")
        assert pairs[-1] == ("readonly", "1")
        names = dict(pairs)
        assert names["max_execution_time"] and names["max_memory_usage"] and names["log_comment"]
    assert ("allow_python_table_function", "0") in ReaderLimits().session_settings(
        embedded=True, tag="t"
    )


@given(st.text(max_size=60))
def test_only_this_server_s_names_pass(host: str) -> None:
    guard = Guard("127.0.0.1", frozenset({"opens.internal"}))
    allowed = guard.host_allowed(host)
    name = host.rsplit(":", 1)[0].strip("[]").lower() if host else ""
    if allowed:
        assert name in {"localhost", "opens.internal", "::1"} or name.startswith("127.")


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "Authorization",
                "X-ClickHouse-User",
                "X-ClickHouse-Key",
                "Origin",
                "Host",
                "Sec-Fetch-Site",
            ]
        ),
        st.text(max_size=40),
    )
)
def test_guard_never_raises_and_refuses_without_credentials(headers: dict[str, str]) -> None:
    guard = Guard("127.0.0.1", user="analyst", password="pw")
    refusal = guard.refusal(headers, {})
    user, password = credentials(headers, {})
    if (user, password) != ("analyst", "pw"):
        assert refusal is not None


def test_basic_credentials() -> None:
    token = base64.b64encode(b"analyst:p:w").decode()
    assert credentials({"Authorization": f"Basic {token}"}, {}) == ("analyst", "p:w")
    assert credentials({"Authorization": "Basic !!!"}, {}) == ("", "")
    assert credentials({}, {"user": "u", "password": "p"}) == ("u", "p")


def test_describing_a_table_function_is_refused() -> None:
    dump = (
        "DescribeQuery (children 1)\n TableExpression (children 1)\n  Function url (children 1)\n"
        "   ExpressionList (children 2)\n    Literal 'http://127.0.0.1:9/x'\n"
    )
    assert "url()" in (ast_refusal(dump) or "")
    table = "DescribeQuery (children 1)\n TableExpression (children 1)\n  TableIdentifier t\n"
    assert ast_refusal(table) is None
    subquery = (
        "DescribeQuery (children 1)\n TableExpression (children 1)\n  Subquery (children 1)\n"
        "   SelectWithUnionQuery (children 1)\n    ExpressionList (children 1)\n"
        "     SelectQuery (children 1)\n      ExpressionList (children 1)\n"
        "       Function plus (children 1)\n"
    )
    assert ast_refusal(subquery) is None
