"""The local edge on moto: what it serves, and that both logs decode to the requests it served."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from processor.core.context import DecodeContext
from processor.core.fields import CANONICAL_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.pixel import PIXEL_GIF
from processor.core.realtime import RealtimeDecoder
from processor.core.standard import StandardParser
from processor.devstack.stack import LocalStack
from processor.edge.logged import LoggedRequest
from processor.edge.realtime_out import put_records
from processor.edge.server import Edge, EdgeConfig, EdgeThread
from processor.edge.standard_out import object_key
from processor.traffic.mix import Planned
from processor.traffic.send import send_traffic
from tests.conftest import unique

SECRET = b"edge-test-secret"
CTX = DecodeContext(secrets=(SECRET,), ip_privacy="full")


def read_stream(kinesis: Any, stream: str) -> list[bytes]:
    out: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=10_000)
            out += [r["Data"] for r in page["Records"]]
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


def read_logs(s3: Any, bucket: str, prefix: str) -> dict[str, list[str]]:
    out = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        out[obj["Key"]] = gzip.decompress(body).decode().splitlines()
    return out


@pytest.fixture
def edge_on_moto(stack: LocalStack) -> Iterator[tuple[EdgeThread, str, str]]:
    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    stream, bucket = unique("edge"), unique("logs")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    s3.create_bucket(Bucket=bucket)
    config = EdgeConfig(
        stream=stream,
        log_bucket=bucket,
        log_prefix="cloudfront",
        distribution_id="E1EDGETEST",
        fields=CANONICAL_REALTIME_FIELDS,
        flush_seconds=3600,  # only the explicit flushes below write objects
    )
    thread = EdgeThread(Edge(config, kinesis, s3))
    thread.start()
    try:
        yield thread, stream, bucket
    finally:
        thread.stop()


@pytest.mark.integration
def test_both_logs_decode_to_the_requests_served(
    edge_on_moto: tuple[EdgeThread, str, str],
) -> None:
    thread, stream, bucket = edge_on_moto
    query = "sid=s%C3%A9b%20one&cid=bf%2F26&cat=promo"  # percent-encoded as a client sends it
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
    plan = [
        Planned("GET", f"/o.gif?{query}", "80.130.1.2", ua, "t", "DE", "séb one", "bf/26"),
        Planned("HEAD", f"/o.gif?{query}", "73.1.2.3", "curl/8.5.0", "t", "US", "séb one", "bf/26"),
        Planned("GET", "/favicon.ico", "90.1.2.3", ua, "t", "FR"),
        Planned("POST", "/o.gif", "86.130.1.2", ua, "t", "GB"),
    ]
    sent = asyncio.run(send_traffic(thread.edge.url, plan, concurrency=1))
    assert [s.status for s in sent] == [200, 200, 404, 403]
    assert len({s.request_id for s in sent}) == 4
    thread.flush()

    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    realtime = RealtimeDecoder(CANONICAL_REALTIME_FIELDS, CTX)
    rt_hits = [realtime.decode(r) for r in read_stream(kinesis, stream)]
    logs = read_logs(s3, bucket, "cloudfront/")
    assert len(logs) == 1
    key, lines = next(iter(logs.items()))
    assert key.startswith("cloudfront/E1EDGETEST.") and key.endswith(".gz")
    assert lines[0] == "#Version: 1.0" and lines[1].startswith("#Fields: date time x-edge-")
    parser = StandardParser(CTX)
    std_hits = [parser.parse_line(line) for line in lines[2:]]

    by_id_rt = {h.request_id: h for h in rt_hits if isinstance(h, Hit)}
    by_id_std = {h.request_id: h for h in std_hits if isinstance(h, Hit)}
    pixel = [s for s in sent if s.status == 200]
    for s in pixel:
        rt, std = by_id_rt[s.request_id], by_id_std[s.request_id]
        assert (rt.sid, rt.cid, rt.cat, rt.method, rt.status) == (
            "séb one",
            "bf/26",
            "promo",
            s.planned.method,
            200,
        )
        assert rt.client_ip == std.client_ip == s.planned.ip  # X-Forwarded-For honoured
        assert rt.country == s.planned.country
        assert rt.user_agent == std.user_agent == s.planned.user_agent
        assert rt.ts_ms // 1000 == std.ts_ms // 1000
        same = ("sid", "cid", "cat", "signature", "method", "status", "client", "machine")
        assert {k: getattr(rt, k) for k in same} == {k: getattr(std, k) for k in same}
    # Every request is logged, pixel or not, in both logs (the decoders skip non-pixel paths).
    assert len(read_stream(kinesis, stream)) == len(lines) - 2 == 4
    assert thread.edge.stats()["requests"] == 4


@pytest.mark.integration
def test_pixel_response_is_cloudfront_like(edge_on_moto: tuple[EdgeThread, str, str]) -> None:
    import urllib.request

    thread, _, _ = edge_on_moto
    with urllib.request.urlopen(f"{thread.edge.url}/o.gif?sid=a&cid=b") as resp:
        body, headers = resp.read(), resp.headers
    assert body == PIXEL_GIF
    assert headers["Content-Type"] == "image/gif"
    assert "no-cache" in headers["Cache-Control"]
    assert len(headers["X-Amz-Cf-Id"]) == 56
    assert headers["X-Cache"].endswith("from cloudfront")
    req = urllib.request.Request(
        f"{thread.edge.url}/o.gif?sid=a&cid=b", headers={"If-None-Match": headers["ETag"]}
    )
    with pytest.raises(urllib.error.HTTPError) as err:  # urllib raises on 304
        urllib.request.urlopen(req)
    assert err.value.code == 304


@pytest.mark.integration
def test_dropped_realtime_records_stay_in_the_standard_log(stack: LocalStack) -> None:
    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    stream, bucket = unique("edge"), unique("logs")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    s3.create_bucket(Bucket=bucket)
    config = EdgeConfig(stream, bucket, "", "E1DROP", drop_realtime=0.3, seed=5)
    thread = EdgeThread(Edge(config, kinesis, s3))
    thread.start()
    try:
        plan = [
            Planned("GET", f"/o.gif?sid=s{i}&cid=c", "80.130.1.2", "ua", "t", "DE")
            for i in range(60)
        ]
        sent = asyncio.run(send_traffic(thread.edge.url, plan, concurrency=4))
        thread.flush()
        lost = set(thread.edge.dropped_ids)
    finally:
        thread.stop()
    ids = {s.request_id for s in sent}
    decoder = RealtimeDecoder()
    in_stream = {h.request_id for h in map(decoder.decode, read_stream(kinesis, stream))}
    assert 0 < len(lost) < 60
    assert in_stream == ids - lost
    lines = [ln for body in read_logs(s3, bucket, "").values() for ln in body[2:]]
    parser = StandardParser()
    assert {h.request_id for h in map(parser.parse_line, lines) if isinstance(h, Hit)} == ids
    # The same seed and the same order of requests drop the same requests.
    reqs = [LoggedRequest(f"id{i}", 0, "GET", "/o.gif", "sid=a&cid=b", 200, "") for i in range(60)]

    def dropped() -> set[str]:
        edge = Edge(config, kinesis, s3)
        for req in reqs:
            edge.log(req)
        return edge.dropped_ids

    assert dropped() == dropped()


@pytest.mark.unit
def test_throttled_records_are_retried_alone() -> None:
    client = boto3.client(
        "kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    records: list[Any] = [{"Data": f"r{i}".encode(), "PartitionKey": str(i)} for i in range(3)]
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            {
                "FailedRecordCount": 1,
                "Records": [
                    {"SequenceNumber": "1", "ShardId": "shardId-0"},
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded",
                    },
                    {"SequenceNumber": "2", "ShardId": "shardId-0"},
                ],
            },
            {"StreamName": "s", "Records": records},
        )
        stub.add_client_error(
            "put_records",
            service_error_code="ProvisionedThroughputExceededException",
            expected_params={"StreamName": "s", "Records": [records[1]]},
        )
        stub.add_response(
            "put_records",
            {"Records": [{"SequenceNumber": "3", "ShardId": "shardId-0"}]},
            {"StreamName": "s", "Records": [records[1]]},
        )
        result = put_records(client, "s", records, sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert (result.put, result.retried, result.failed) == (3, 2, 0)


@pytest.mark.unit
def test_log_object_keys_follow_cloudfront() -> None:
    key = object_key("logs", "E2ABC", "2026-11-27-21")
    assert key.startswith("logs/E2ABC.2026-11-27-21.") and key.endswith(".gz")
    assert object_key("", "E2ABC", "2026-11-27-21").startswith("E2ABC.2026-11-27-21.")


@pytest.mark.integration
def test_opens_edge_command_logs_and_flushes_on_sigterm(stack: LocalStack, tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import free_port

    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    stream, bucket = unique("edge"), unique("logs")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    s3.create_bucket(Bucket=bucket)
    port = free_port()
    env = {
        **os.environ,
        "OPENS_DATA_DIR": str(tmp_path),
        "OPENS_KINESIS_STREAM": stream,
        "OPENS_INFRA_LOG_BUCKET": bucket,
        "OPENS_INFRA_LOG_PREFIX": "edge/",
    }
    argv = [sys.executable, "-m", "processor", "edge", "--port", str(port)]
    argv += ["--distribution-id", "E3CLI", "--flush-seconds", "3600"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/o.gif?sid=a&cid=b"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    rid = resp.headers["X-Amz-Cf-Id"]
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "opens edge did not start"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # The standard log is only flushed on shutdown here (flush interval of an hour).
    logs = read_logs(s3, bucket, "edge/")
    assert [k.split(".")[0] for k in logs] == ["edge/E3CLI"]
    parser = StandardParser()
    lines = next(iter(logs.values()))[2:]
    assert [h.request_id for h in map(parser.parse_line, lines) if isinstance(h, Hit)] == [rid]
    assert [RealtimeDecoder().decode(r).request_id for r in read_stream(kinesis, stream)] == [rid]  # type: ignore[union-attr]
