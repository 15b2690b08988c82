from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.analytics.readonly import refusal

pytestmark = pytest.mark.unit

ALLOWED = [
    "SELECT 1",
    "  select * from opens.campaign_summary FORMAT JSON",
    "WITH 1 AS a SELECT a",
    "SELECT version(), timezone()",
    "SELECT ';DROP TABLE x' AS s",  # a semicolon inside a string
    "SELECT 1 -- ; DROP TABLE hits",
    "SELECT `file`(1) FROM t",  # a quoted identifier, not a table function call
    "SELECT {c:String}",
    "SHOW TABLES",
    "DESCRIBE TABLE opens.hits",
    "EXISTS TABLE opens.hits",
    "EXPLAIN SELECT 1",
    "SELECT 1;",
    "SELECT profile FROM t",  # 'file' inside another word
]
REFUSED = [
    "DROP TABLE hits",
    "INSERT INTO hits VALUES ('x')",
    "SELECT 1; DROP TABLE hits",
    "/* SELECT */ DROP TABLE hits",
    "SYSTEM FLUSH LOGS",
    "SET readonly = 0",
    "ALTER TABLE hits DELETE WHERE 1",
    "OPTIMIZE TABLE hits FINAL",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM FILE('/etc/passwd')",
    "SELECT * FROM url('http://example.com/x', CSV)",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT 1 INTO OUTFILE '/tmp/x'",
    "WITH (SELECT 1) AS x SELECT * FROM s3('s3://b/k')",
    "",
    ";",
    "KILL QUERY WHERE 1",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_reading_statements_pass(sql: str) -> None:
    assert refusal(sql) is None


@pytest.mark.parametrize("sql", REFUSED)
def test_writes_and_escapes_are_refused(sql: str) -> None:
    assert refusal(sql) is not None


@given(st.text(max_size=300))
def test_never_raises(sql: str) -> None:
    refusal(sql)


@given(st.sampled_from(REFUSED[:9]), st.text(alphabet=" \t\n", max_size=5))
def test_whitespace_does_not_hide_a_write(sql: str, pad: str) -> None:
    assert refusal(pad + sql + pad) is not None
