"""The read-only ClickHouse-compatible endpoint, exercised with clickhouse-connect's own client."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import clickhouse_connect
import pytest

pytestmark = pytest.mark.integration


def test_clickhouse_connect_reads_the_views(
    endpoint: str, chdb_client: Any, ch_database: str
) -> None:
    port = int(endpoint.rsplit(":", 1)[1])
    remote = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=ch_database)
    got = remote.query("SELECT campaign, unique_opens FROM campaign_summary ORDER BY campaign")
    local = chdb_client.query(
        "SELECT campaign, unique_opens FROM {db:Identifier}.campaign_summary ORDER BY campaign",
        parameters={"db": ch_database},
    )
    assert got.result_rows == local.result_rows
    assert [r[0] for r in got.result_rows] == ["alpha", "beta"]
    # Bound parameters through the endpoint, with a hostile value.
    n = remote.command(
        "SELECT count() FROM campaign_summary WHERE campaign = {c:String}",
        parameters={"c": "'; DROP TABLE hits; --"},
    )
    assert n == 0
    assert remote.ping()


def test_writes_and_ddl_are_refused(endpoint: str, ch_database: str, chdb_client: Any) -> None:
    port = int(endpoint.rsplit(":", 1)[1])
    remote = clickhouse_connect.get_client(host="127.0.0.1", port=port, database=ch_database)
    before = chdb_client.command(f"SELECT count() FROM {ch_database}.hits")
    for sql in (
        "DROP TABLE hits",
        "CREATE TABLE evil (a Int8) ENGINE = Memory",
        "INSERT INTO hits (request_id) VALUES ('x')",
        "SELECT 1; DROP TABLE hits",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SYSTEM DROP DNS CACHE",
        "ALTER TABLE hits DELETE WHERE 1",
    ):
        with pytest.raises(Exception, match="read-only"):
            remote.command(sql)
    with pytest.raises(Exception, match=r"read-only|READONLY|164"):
        remote.insert("hits", [["x"]], column_names=["request_id"])
    assert chdb_client.command(f"SELECT count() FROM {ch_database}.hits") == before


def test_curl_style_get_with_format(endpoint: str, ch_database: str) -> None:
    q = urllib.parse.urlencode(
        {
            "query": f"SELECT campaign, opens FROM {ch_database}.campaign_summary "
            "ORDER BY campaign",
            "default_format": "JSON",
        }
    )
    with urllib.request.urlopen(f"{endpoint}/?{q}", timeout=10) as resp:
        doc = json.loads(resp.read())
    assert [r["campaign"] for r in doc["data"]] == ["alpha", "beta"]
    with urllib.request.urlopen(f"{endpoint}/ping", timeout=5) as resp:
        assert resp.read() == b"Ok.\n"
    body = f"SELECT count() FROM {ch_database}.first_opens FORMAT CSV".encode()
    with urllib.request.urlopen(urllib.request.Request(endpoint + "/", data=body), timeout=10) as r:
        assert int(r.read().decode().strip()) > 0
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(
            urllib.request.Request(endpoint + "/", data=b"DROP DATABASE " + ch_database.encode()),
            timeout=10,
        )
    assert info.value.code == 403
    assert b"read-only" in info.value.read()
