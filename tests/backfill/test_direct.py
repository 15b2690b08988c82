"""``--direct`` from local files into chDB: exact truth, re-runs, --force, bad input, dates,
and overlap with hits already ingested in real time."""

from __future__ import annotations

import gzip
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from processor.core.fields import DEFAULT_REALTIME_FIELDS, STANDARD_FIELDS
from processor.core.hit import Hit
from processor.core.realtime import RealtimeDecoder
from tests.backfill.conftest import RunFn, hit_rows, manifest
from tests.backfill.logs import (
    CTX,
    HOUR_MS,
    START_MS,
    Request,
    cloudfront_files,
    hour_name,
    make_requests,
    realtime_truth_hits,
    s3_access_files,
    truth_hits,
    with_ms,
)
from tests.core.render import realtime_record, standard_header, standard_line
from tests.factories import check, summary, truth, write

pytestmark = pytest.mark.integration


def test_backfill_equals_truth_and_a_rerun_changes_nothing(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    reqs = make_requests(random.Random(1), 3000)
    logs = cloudfront_files(reqs)
    logs.write_to(tmp_path)
    first = run_direct(str(tmp_path))
    assert first.clean
    assert first.objects == len(logs.files) == 8
    assert first.lines == 3000 + 2 * len(logs.files)  # with the two header lines per file
    assert first.hits == len(truth_hits(reqs))
    check(chdb_client, backfill_db, truth_hits(reqs))
    before = summary(chdb_client, backfill_db)
    rows = manifest(chdb_client, backfill_db)
    assert len(rows) == len(logs.files)
    assert sum(r[1] for r in rows.values()) == first.hits

    again = run_direct(str(tmp_path))
    assert (again.objects, again.skipped_done, again.lines) == (0, len(logs.files), 0)
    assert summary(chdb_client, backfill_db) == before

    forced = run_direct(str(tmp_path), force=True)
    assert (forced.objects, forced.hits) == (len(logs.files), first.hits)
    assert summary(chdb_client, backfill_db) == before
    assert hit_rows(chdb_client, backfill_db) == first.hits
    # --force replaced each manifest row instead of adding one.
    assert manifest(chdb_client, backfill_db) == rows


def test_standard_and_both_s3_layouts_together(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    rnd = random.Random(2)
    cf = make_requests(rnd, 800)
    simple = make_requests(rnd, 400, fmt="s3")
    parted = make_requests(rnd, 400, fmt="s3")
    cloudfront_files(cf).write_to(tmp_path)
    s3_access_files(simple, partitioned=False, prefix="s3simple/").write_to(tmp_path)
    s3_access_files(parted, partitioned=True, prefix="s3parted/").write_to(tmp_path)
    result = run_direct(str(tmp_path))
    assert result.clean
    check(chdb_client, backfill_db, truth_hits(cf + simple + parted))
    sources = dict(
        chdb_client.query(
            f"SELECT source, count() FROM {backfill_db}.hits FINAL GROUP BY source"
        ).result_rows
    )
    assert sources == {"standard": len(truth_hits(cf)), "s3": len(truth_hits(simple + parted))}


def test_bad_input_is_counted_with_its_line_and_the_rest_is_kept(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    rnd = random.Random(3)
    good = make_requests(rnd, 600)
    logs = cloudfront_files(good, bad_every=50)  # a short line after every 50th request
    logs.write_to(tmp_path)
    bad_lines = sum(len(reqs) // 50 for _, reqs in logs.files.values())

    # A truncated gzip: the requests before the cut still count.
    cut = make_requests(rnd, 4000, hours=1, start_ms=START_MS + 10 * 3_600_000)
    body = (standard_header() + "".join(standard_line(r.req) + "\n" for r in cut)).encode()
    packed = gzip.compress(body, mtime=0)
    (tmp_path / "E2CUT.2025-11-25-02.trunc.gz").write_bytes(packed[: len(packed) // 2])
    # A corrupt gzip: garbage in the middle of the stream.
    broken = bytearray(gzip.compress(body, mtime=0))
    broken[len(broken) // 2 : len(broken) // 2 + 200] = bytes(200)
    (tmp_path / "E2BAD.2025-11-25-02.corrupt.gz").write_bytes(bytes(broken))
    # An object in no layout we know, by name or content.
    (tmp_path / "mystery.bin").write_bytes(b"PK\x03\x04 not a log at all\n")
    (tmp_path / "empty.log").write_bytes(b"")  # nothing in it: nothing skipped either

    result = run_direct(str(tmp_path))
    assert not result.clean
    assert result.incomplete == 3
    assert result.failures["field_count"] == bad_lines
    assert result.failures["unknown_layout"] == 1
    assert result.failures["truncated"] >= 1
    assert result.failures["truncated"] + result.failures["corrupt_gzip"] == 2
    rows = manifest(chdb_client, backfill_db)
    trunc = rows[str((tmp_path / "E2CUT.2025-11-25-02.trunc.gz").resolve())]
    lines, hits, _bad, complete, failures, examples, _ = trunc
    assert complete == 0 and failures == {"truncated": 1}
    assert examples == [f"truncated@{lines + 1}"]  # the line where reading stopped
    assert 0 < lines < len(cut)
    assert rows[str((tmp_path / "mystery.bin").resolve())][5] == ["unknown_layout@0"]
    assert rows[str((tmp_path / "empty.log").resolve())][:4] == (0, 0, 0, 1)
    one = next(v for k, v in rows.items() if k.endswith("0000abcd.gz"))
    assert one[5][0] == "field_count@53"  # header, header, 50 requests, then the bad line
    assert any("field_count@53" in p for p in result.problems)

    # Everything readable counted exactly: the good files plus what precedes each cut.
    readable = [r for r in cut if r.req.request_id in _ids(chdb_client, backfill_db)]
    assert len(readable) >= hits > 0
    check(chdb_client, backfill_db, truth_hits(good) + truth_hits(readable))


def _ids(client: Any, db: str) -> set[str]:
    return {r[0] for r in client.query(f"SELECT request_id FROM {db}.hits").result_rows}


def test_since_until_keeps_the_hits_inside_the_window_from_objects_with_slack(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    rnd = random.Random(4)
    reqs = make_requests(rnd, 2000, hours=6)
    logs = cloudfront_files(reqs)
    logs.write_to(tmp_path)
    # CloudFront names a file by the hour a request finished: a few requests of hours 2 and 3
    # sit in files named for hours 1 and 4, which the hour of slack opens.
    late = make_requests(rnd, 60, hours=1, start_ms=START_MS + 2 * HOUR_MS)
    early = make_requests(rnd, 60, hours=1, start_ms=START_MS + 3 * HOUR_MS)
    for reqs_in, hour in ((late, 1), (early, 4)):
        body = standard_header() + "".join(standard_line(r.req) + "\n" for r in reqs_in)
        name = f"E2EXAMPLE7ABC.{hour_name(START_MS + hour * HOUR_MS)}.straddle.gz"
        (tmp_path / name).write_bytes(gzip.compress(body.encode(), mtime=0))
    base = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    since, until = base + timedelta(hours=2), base + timedelta(hours=4)

    result = run_direct(str(tmp_path), since=since, until=until)
    # Objects of hours 1-4 are read; only the hits of hours 2 and 3 are kept.
    slack_hours = {hour_name(START_MS + h * HOUR_MS) for h in (1, 4)}
    slack = [name for name in logs.files if name.split(".")[1] in slack_hours]
    assert result.listed == 8 + 2
    inside = [
        h
        for h in truth_hits(reqs + late + early)
        if START_MS + 2 * HOUR_MS <= h.ts_ms < START_MS + 4 * HOUR_MS
    ]
    assert result.hits == len(inside) > 0
    assert result.outside_window == len(truth_hits(logs.requests(slack))) > 0
    check(chdb_client, backfill_db, inside)

    # The same window again: every object is finished for it.
    again = run_direct(str(tmp_path), since=since, until=until)
    assert (again.objects, again.skipped_done) == (0, 10)
    # No window: the objects that left hits out are read again, with those of hours 0 and 5.
    rest = run_direct(str(tmp_path))
    assert (rest.skipped_done, rest.objects) == (6, 8)
    check(chdb_client, backfill_db, truth_hits(reqs + late + early))


def test_backfill_after_real_time_changes_nothing(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    rnd = random.Random(5)
    reqs = make_requests(rnd, 2000)
    # Real time saw 70 % of the requests (with millisecond timestamps); the standard log has all.
    seen = with_ms([r for r in reqs if rnd.random() < 0.7], rnd)
    decoder = RealtimeDecoder(DEFAULT_REALTIME_FIELDS, CTX)
    realtime: list[Hit] = []
    for r in seen:
        out = decoder.decode(realtime_record(r.req, DEFAULT_REALTIME_FIELDS))
        if isinstance(out, Hit) and out.is_hit:
            realtime.append(out)
    assert len(realtime) == len(truth_hits(seen))
    write(chdb_client, backfill_db, realtime)
    check(chdb_client, backfill_db, realtime)

    cloudfront_files(reqs).write_to(tmp_path)
    run_direct(str(tmp_path))
    # Every request once, its real-time copy kept (milliseconds) over the log line.
    expected = truth(truth_hits(reqs) + realtime_truth_hits(seen))
    check(chdb_client, backfill_db, truth_hits(reqs) + realtime)
    got = summary(chdb_client, backfill_db)
    assert {cid: {k: row[k] for k in expected[cid]} for cid, row in got.items()} == expected
    assert hit_rows(chdb_client, backfill_db) == len(truth_hits(reqs))
    before = summary(chdb_client, backfill_db)
    run_direct(str(tmp_path), force=True)
    assert summary(chdb_client, backfill_db) == before


def test_decoding_in_child_processes_gives_the_same_numbers(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    reqs = make_requests(random.Random(6), 1500)
    logs = cloudfront_files(reqs, bad_every=100)
    logs.write_to(tmp_path)
    (tmp_path / "mystery.bin").write_bytes(b"\x00\x01 not a log\n")
    result = run_direct(str(tmp_path), decode_processes=2)
    assert (result.objects, result.hits) == (len(logs.files) + 1, len(truth_hits(reqs)))
    assert result.failures["unknown_layout"] == 1 and result.failures["field_count"] > 0
    check(chdb_client, backfill_db, truth_hits(reqs))
    assert len(manifest(chdb_client, backfill_db)) == len(logs.files) + 1


def _v2_json_line(r: Request) -> str:
    """A standard logging v2 JSON record: every value a string, milliseconds and a country."""
    record = dict(zip(STANDARD_FIELDS, standard_line(r.req).split("\t"), strict=True))
    record["timestamp(ms)"] = str(r.req.ts_ms)
    record["c-country"] = "DE"
    return json.dumps(record)


def test_standard_logging_v2_objects(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    rnd = random.Random(7)
    as_json = with_ms(make_requests(rnd, 600, hours=2), rnd)
    as_w3c = with_ms(make_requests(rnd, 600, hours=2, start_ms=START_MS + 2 * HOUR_MS), rnd)
    dist = "E2EXAMPLE7ABC"
    # v2 delivers under AWSLogs/{account}/CloudFront/ with partition folders, plain or Hive-style.
    for r in as_json:
        t = time.gmtime(r.req.ts_ms // 1000)
        folder = time.strftime(f"AWSLogs/123456789012/CloudFront/{dist}/%Y/%m/%d/%H", t)
        name = f"{folder}/{dist}.{hour_name(r.req.ts_ms)}.1a2b3c4d.gz"
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "at") as fh:
            fh.write(_v2_json_line(r) + "\n")
    fields = [*STANDARD_FIELDS, "timestamp(ms)", "c-country"]
    for hour in (2, 3):
        ms = START_MS + hour * HOUR_MS
        t = time.gmtime(ms // 1000)
        folder = time.strftime("v2/year=%Y/month=%m/day=%d/hour=%H", t)
        rows = [
            "\t".join([standard_line(r.req), str(r.req.ts_ms), "DE"])
            for r in as_w3c
            if hour_name(r.req.ts_ms) == hour_name(ms)
        ]
        body = "#Fields: " + " ".join(fields) + "\n" + "\n".join(rows) + "\n"
        path = tmp_path / folder / f"{dist}.{hour_name(ms)}.5e6f7a8b.gz"
        path.parent.mkdir(parents=True)
        path.write_bytes(gzip.compress(body.encode(), mtime=0))

    result = run_direct(str(tmp_path))
    assert result.clean and result.objects == 4
    check(chdb_client, backfill_db, truth_hits(as_json + as_w3c))
    countries = chdb_client.query(
        f"SELECT DISTINCT country FROM {backfill_db}.hits FINAL"
    ).result_rows
    assert countries == [("DE",)]
    # The date filter reads the v2 names too: hour 0 only (with its slack, hour 1's objects).
    base = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    again = run_direct(str(tmp_path), since=base, until=base + timedelta(hours=1), force=True)
    assert again.listed == 2
