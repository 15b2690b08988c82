"""``run_backfill(decode_processes=N)``: the reading and decoding half in N child processes.

Each child (``python -m processor.backfill.decoder``) gets a pickled ``Job`` and sends frames back;
a thread per child forwards them to the one ``Writer`` of the run.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from processor.backfill.decode import Window
from processor.backfill.encode import Encoder
from processor.backfill.fetch import ReadPolicy
from processor.backfill.sinks import Writer
from processor.backfill.sources import LogObject
from processor.backfill.summary import BackfillSummary, Progress
from processor.core.context import DecodeContext
from processor.errors import OpensError

__all__ = ["DecoderFailed", "Job", "decode_in_children"]


class DecoderFailed(OpensError):
    """A decoding process stopped before finishing; finished objects are in the manifest."""


@dataclass(frozen=True)
class Job:
    """What one decoding child does: read, decode and encode ``objects`` in order."""

    objects: list[LogObject]
    ctx: DecodeContext
    mode: str
    encode: Encoder
    window: Window
    read_ahead: int = 2
    policy: ReadPolicy = field(default_factory=ReadPolicy)


def decode_in_children(
    jobs: list[Job], writer: Writer, summary: BackfillSummary, progress: Progress
) -> None:
    """Run each job in a child process; a thread per child forwards its frames to the writer.

    A child's payloads reach the writer's queue before the ``done`` frame of their object (one
    pipe, one forwarding thread), so the manifest row still follows the delivery of its hits.
    """
    lock = threading.Lock()
    errors: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    threads = []

    def forward(proc: subprocess.Popen[bytes]) -> None:
        from processor.backfill.decoder import read_frames

        assert proc.stdout is not None  # noqa: S101 - PIPE given
        finished = False
        try:
            for kind, value in read_frames(proc.stdout):
                if kind == "payload":
                    writer.put_payload(value)
                elif kind == "lines":
                    with lock:
                        progress.lines(value)
                elif kind == "done":
                    with lock:
                        summary.add(value)
                    writer.finished(value)
                elif kind == "end":
                    finished = True
                    break
                else:
                    errors.append(f"decoding failed: {value}")
                    break
        except BaseException as exc:  # the writer failed: stop this child, report it below
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            code = proc.wait()
            if not finished and not errors:
                errors.append(f"a decoding process ended early (exit status {code})")

    try:
        for job in jobs:
            proc = subprocess.Popen(
                [sys.executable, "-m", "processor.backfill.decoder"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdin is not None  # noqa: S101 - PIPE given
            pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()
            thread = threading.Thread(target=forward, args=(proc,), name="backfill-decoder")
            thread.start()
            threads.append(thread)
    finally:
        for thread in threads:
            thread.join()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if errors:
        raise DecoderFailed(errors[0], hint="re-run: finished objects are skipped")
