"""Issue #14, finding 8: a read that fails on the way never finishes an object.

moto's S3 in server mode behind ``FlakyS3Proxy`` (connections reset mid-body, 500s on GetObject),
and local files whose reads fail part-way. A transient failure is resumed within the run; one that
keeps failing leaves the object pending (no manifest row, exit status 4 from the CLI) and the next
run loads it — every hit exactly once.
"""

from __future__ import annotations

import errno
import gzip
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from processor.backfill import fetch
from processor.backfill.fetch import ReadPolicy
from processor.backfill.manifest import ManifestEntry, finished_objects, insert_entries
from processor.devstack.moto import MotoServer
from processor.devstack.process import free_port
from processor.devstack.s3_faults import Fault, FlakyS3Proxy
from processor.devstack.stack import DUMMY_AWS
from tests.backfill.conftest import RunFn, hit_rows, manifest
from tests.backfill.logs import SECRET, cloudfront_files, make_requests, truth_hits
from tests.conftest import query_chdb_in_subprocess, unique
from tests.core.render import standard_header, standard_line
from tests.factories import check, truth

pytestmark = pytest.mark.integration

FAST = ReadPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server alone (no Kafka needed here), stopped by its pid at the end."""
    server = MotoServer(tmp_path_factory.mktemp("moto"), "127.0.0.1", free_port())
    server.start()
    try:
        server.wait_healthy(60)
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in DUMMY_AWS.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def proxy(moto: str, aws: None) -> Iterator[FlakyS3Proxy]:
    p = FlakyS3Proxy(moto).start()
    try:
        yield p
    finally:
        p.stop()


def _client(endpoint: str) -> Any:
    # botocore's own retries off: what is tested is the backfill's (it retries a 500 itself too).
    cfg = Config(
        retries={"mode": "standard", "max_attempts": 1},
        s3={"addressing_style": "path"},
        read_timeout=1,
    )
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def _bucket(moto: str, rnd: random.Random, n: int) -> tuple[str, dict[str, Any], list[Any]]:
    """A bucket of gzip standard logs (two plain-text objects are not needed: gzip is the hard
    case, a cut in it must not end the decompressor early)."""
    s3 = _client(moto)
    bucket = unique("flaky")
    s3.create_bucket(Bucket=bucket)
    reqs = make_requests(rnd, n)
    files = cloudfront_files(reqs, prefix="cf/").files
    for key, (data, _) in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return bucket, files, reqs


@pytest.mark.parametrize(("mode", "n"), [("reset", 2), ("500", 2), ("stall", 1)])
def test_transient_s3_failures_are_retried_and_resumed_within_the_run(
    proxy: FlakyS3Proxy, run_direct: RunFn, chdb_client: Any, backfill_db: str, mode: Fault, n: int
) -> None:
    bucket, files, reqs = _bucket(proxy.upstream, random.Random(31), 1200)
    proxy.mode = mode
    proxy.stall_seconds = 3  # the client gives up reading after 1 s
    for key in files:
        proxy.faults[f"/{bucket}/{key}"] = n  # the first n GetObject calls of every object fail
    result = run_direct(f"s3://{bucket}/cf/", s3_client=_client(proxy.endpoint), read=FAST)
    assert result.clean and not result.pending
    assert result.objects == len(files)
    assert sum(proxy.failed.values()) == n * len(files)
    check(chdb_client, backfill_db, truth_hits(reqs))
    assert hit_rows(chdb_client, backfill_db) == len(truth_hits(reqs)) == result.hits


def test_s3_object_failing_past_the_retries_stays_pending_and_the_rerun_loads_it_once(
    proxy: FlakyS3Proxy, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    bucket, files, reqs = _bucket(proxy.upstream, random.Random(32), 1500)
    flaky = sorted(files)[1]
    proxy.faults[f"/{bucket}/{flaky}"] = 1_000  # every GetObject of it is cut mid-body
    s3 = _client(proxy.endpoint)
    first = run_direct(f"s3://{bucket}/cf/", s3_client=s3, read=FAST)
    assert not first.clean
    assert len(first.pending) == 1 and first.pending[0].startswith(f"s3://{bucket}/{flaky}: ")
    assert "read_error" in first.pending[0] and "4 attempts" in first.pending[0]
    assert first.objects == len(files) - 1
    rows = manifest(chdb_client, backfill_db)
    assert f"s3://{bucket}/{flaky}" not in rows  # not finished, not even incomplete
    assert all(r[3] == 1 for r in rows.values())
    # Half of each cut body was decoded and delivered: those hits are in, keyed by request id.
    others = [r for k, (_, rs) in files.items() if k != flaky for r in rs]
    assert hit_rows(chdb_client, backfill_db) > len(truth_hits(others))

    proxy.faults.clear()
    again = run_direct(f"s3://{bucket}/cf/", s3_client=s3, read=FAST)
    assert again.clean
    assert (again.objects, again.skipped_done) == (1, len(files) - 1)
    assert again.hits == len(truth_hits(files[flaky][1]))
    check(chdb_client, backfill_db, truth_hits(reqs))  # no hit of the cut object counted twice
    assert hit_rows(chdb_client, backfill_db) == len(truth_hits(reqs))
    assert manifest(chdb_client, backfill_db)[f"s3://{bucket}/{flaky}"][3] == 1


def test_decoding_children_leave_an_unreadable_object_pending_too(
    proxy: FlakyS3Proxy,
    run_direct: RunFn,
    chdb_client: Any,
    backfill_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``decode_processes``: the child reads (its own S3 client, from the environment), the
    parent records; a pending entry crosses the pipe and gets no row either."""
    bucket, files, reqs = _bucket(proxy.upstream, random.Random(37), 600)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    flaky = sorted(files)[-1]
    proxy.faults[f"/{bucket}/{flaky}"] = 1_000
    s3 = _client(proxy.endpoint)
    first = run_direct(f"s3://{bucket}/cf/", s3_client=s3, read=FAST, decode_processes=1)
    assert [p.split(": ")[0] for p in first.pending] == [f"s3://{bucket}/{flaky}"]
    assert f"s3://{bucket}/{flaky}" not in manifest(chdb_client, backfill_db)
    proxy.faults.clear()
    again = run_direct(f"s3://{bucket}/cf/", s3_client=s3, read=FAST, decode_processes=1)
    assert again.clean and again.objects == 1
    check(chdb_client, backfill_db, truth_hits(reqs))


class _FailingFile:
    """A local file whose reads fail with EIO once ``fail_at`` bytes were handed out."""

    def __init__(self, path: str, offset: int, fail_at: int) -> None:
        self._fh = Path(path).open("rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(offset)
        self._pos = offset
        self._fail_at = fail_at

    def read(self, n: int = -1, /) -> bytes:
        if self._pos >= self._fail_at:
            raise OSError(errno.EIO, "Input/output error")
        data = self._fh.read(min(n, self._fail_at - self._pos) if n > 0 else self._fail_at)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._fh.close()


def _flaky_local(monkeypatch: pytest.MonkeyPatch, name: str, failures: int) -> list[int]:
    """Reading ``name`` past its middle fails (EIO) for its first ``failures`` opens; returns the
    offsets it was opened at. A read that makes progress starts its retries afresh, so the
    failure sits at one place, like a bad sector."""
    opened: list[int] = []
    real = fetch._open_local

    def open_local(obj: Any) -> Any:
        if not obj.uri.endswith(name):
            return real(obj)

        def open_at(offset: int) -> Any:
            opened.append(offset)
            if len(opened) > failures:
                return real(obj)(offset)
            return _FailingFile(obj.uri, offset, obj.size // 2)

        return open_at

    monkeypatch.setattr(fetch, "_open_local", open_local)
    return opened


def test_local_file_read_error_mid_way_is_resumed_or_left_pending(
    tmp_path: Path,
    run_direct: RunFn,
    chdb_client: Any,
    backfill_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reqs = make_requests(random.Random(33), 1200)
    logs = cloudfront_files(reqs)
    logs.write_to(tmp_path)
    names = sorted(logs.files)
    resumed, stuck = names[0].rsplit("/", 1)[-1], names[2].rsplit("/", 1)[-1]
    opens = _flaky_local(monkeypatch, resumed, failures=2)
    first = run_direct(str(tmp_path), read=FAST)
    # Two failed reads, resumed at the byte reached: the file was read once, in two pieces.
    assert opens[0] == 0 and 0 < opens[1] == opens[2] and len(opens) == 3
    assert first.clean and first.objects == len(names)
    check(chdb_client, backfill_db, truth_hits(reqs))

    stuck_path = str((tmp_path / names[2]).resolve())
    opens = _flaky_local(monkeypatch, stuck, failures=1_000)
    forced = run_direct(str(tmp_path), read=FAST, force=True)
    assert [p.split(": ")[0] for p in forced.pending] == [stuck_path]
    assert "OSError" in forced.pending[0] and "Input/output error" in forced.pending[0]
    assert len(opens) == FAST.attempts
    monkeypatch.setattr(fetch, "_open_local", _REAL_OPEN_LOCAL)
    # --force rewrote the others' rows; the stuck file keeps its row of the first run. Without
    # one (a first run), it would have none — see the S3 test.
    assert manifest(chdb_client, backfill_db)[stuck_path][3] == 1
    check(chdb_client, backfill_db, truth_hits(reqs))


_REAL_OPEN_LOCAL = fetch._open_local


def test_rows_older_versions_wrote_for_a_failed_read_do_not_finish_the_object(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    """The incident: versions before the fix recorded a failed read as an incomplete row, and
    every later run skipped the object. Such a row is not finished; damage still is."""
    reqs = make_requests(random.Random(34), 300, hours=1)
    logs = cloudfront_files(reqs, per_hour=1)
    logs.write_to(tmp_path)
    path = tmp_path / next(iter(logs.files))
    uri = str(path.resolve())
    st = path.stat()
    etag = f"{st.st_size}-{st.st_mtime_ns}"
    old = ManifestEntry(uri, etag, st.st_size, "standard", "direct", lines=10, hits=9)
    old.complete = False
    old.failures["read_error"] = 1
    insert_entries(chdb_client, backfill_db, [old])
    assert finished_objects(chdb_client, backfill_db) == {}
    result = run_direct(str(tmp_path))
    assert (result.objects, result.skipped_done) == (1, 0) and result.clean
    check(chdb_client, backfill_db, truth_hits(reqs))

    damaged = ManifestEntry("/x.gz", "e", 1, "standard", "direct", complete=False)
    damaged.failures["truncated"] = 1
    insert_entries(chdb_client, backfill_db, [damaged])
    assert ("/x.gz", "e") in finished_objects(chdb_client, backfill_db)


def test_a_damaged_gzip_is_recorded_as_damaged_and_not_read_again(
    tmp_path: Path, run_direct: RunFn, chdb_client: Any, backfill_db: str
) -> None:
    """Same bytes, same result: a truncated gzip is loaded up to the damage, recorded incomplete
    with ``truncated@line`` and kept by later runs; replaced (new ETag), it is read again."""
    cut = make_requests(random.Random(35), 988, hours=1)
    body = (standard_header() + "".join(standard_line(r.req) + "\n" for r in cut)).encode()
    packed = gzip.compress(body, mtime=0)
    path = tmp_path / "E2CUT.2025-11-24-16.trunc.gz"
    path.write_bytes(packed[:-30])
    first = run_direct(str(tmp_path))
    assert (first.incomplete, first.pending) == (1, [])
    lines, hits, _, complete, failures, examples, _ = manifest(chdb_client, backfill_db)[
        str(path.resolve())
    ]
    assert complete == 0 and failures == {"truncated": 1} and examples == [f"truncated@{lines + 1}"]
    assert len(cut) - 5 <= lines - 2 < len(cut)  # two header lines; the cut last few lost
    assert 0 < hits <= len(truth_hits(cut))
    again = run_direct(str(tmp_path))
    assert (again.objects, again.skipped_done) == (0, 1)
    assert again.already_damaged == [f"{path.resolve()}: truncated@{lines + 1}"]
    path.write_bytes(packed)  # the whole object arrives: a new ETag, read again
    os.utime(path, ns=(st_ns := path.stat().st_mtime_ns + 1_000_000, st_ns))
    whole = run_direct(str(tmp_path))
    assert whole.clean and whole.objects == 1
    check(chdb_client, backfill_db, truth_hits(cut))


def _cli(tmp: Path, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **DUMMY_AWS,
        "AWS_ENDPOINT_URL": endpoint,
        "OPENS_DATA_DIR": str(tmp / "data"),
        "OPENS_CLICKHOUSE_URL": f"chdb://{tmp / 'ch'}",
        "OPENS_PIXEL_SECRETS": SECRET.decode(),
    }
    return subprocess.run(
        [sys.executable, "-m", "processor", "backfill", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


SUMMARY_SQL = (
    "SELECT campaign, opens, unique_opens, human_unique_opens, machine_opens, invalid_hits,"
    " toUnixTimestamp64Milli(first_open_at), toUnixTimestamp64Milli(last_open_at)"
    " FROM opens.campaign_summary ORDER BY campaign"
)
KEYS = ("opens", "unique_opens", "human_unique_opens", "machine_opens", "invalid_hits")


def test_cli_exits_4_naming_the_object_then_the_rerun_loads_everything(
    proxy: FlakyS3Proxy, tmp_path: Path
) -> None:
    bucket, files, reqs = _bucket(proxy.upstream, random.Random(36), 800)
    flaky = sorted(files)[0]
    proxy.faults[f"/{bucket}/{flaky}"] = 1_000
    done = _cli(tmp_path, proxy.endpoint, f"s3://{bucket}/cf/", "--direct")
    assert done.returncode == 4, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("opens backfill: cannot read")]
    assert len(lines) == 1 and f"s3://{bucket}/{flaky}: read_error" in lines[0], done.stderr
    assert "run again" in lines[0] and "Traceback" not in done.stderr
    assert '"event": "object_pending"' in done.stderr

    proxy.faults.clear()
    again = _cli(tmp_path, proxy.endpoint, f"s3://{bucket}/cf/", "--direct")
    assert again.returncode == 0, again.stderr
    rows = query_chdb_in_subprocess(tmp_path / "ch", SUMMARY_SQL)
    got = {r[0]: dict(zip(KEYS, r[1:6], strict=True)) for r in rows}
    want = {c: {k: v[k] for k in KEYS} for c, v in truth(truth_hits(reqs)).items()}
    assert got == want
