"""The reading and decoding half of a backfill in a process of its own, so both cores work.

Decoding is pure Python and holds the GIL. ``run_backfill(decode_processes=N)`` therefore starts
``python -m processor.backfill.decoder`` N times: each reads one pickled ``run.Job`` from stdin,
reads and decodes its objects (downloading and gunzipping in a thread of its own), encodes every
batch of hits with the job's encoder (Arrow rows or Kafka messages, so only compact payloads cross
the pipe) and writes pickled frames to stdout — ``("payload", encoded)``, ``("lines", n)``,
``("done", ManifestEntry)``, ``("end", None)`` or ``("error", message)``. The pipe's small buffer
is the backpressure: the child waits while the writer is behind, so memory stays bounded. A plain
subprocess, not ``multiprocessing``: spawning would re-run the parent's ``__main__`` (``opens``)
and forking a process that holds an embedded ClickHouse is unsafe.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

__all__ = ["main", "read_frames", "write_frame"]


def write_frame(out: BinaryIO, kind: str, value: Any) -> None:
    pickle.dump((kind, value), out, protocol=pickle.HIGHEST_PROTOCOL)


def read_frames(stream: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """Frames until the end of the stream (``EOFError`` ends the iteration)."""
    while True:
        try:
            frame: tuple[str, Any] = pickle.load(stream)  # noqa: S301 - our own child, private pipe
        except EOFError:
            return
        yield frame


def main() -> int:
    from processor.backfill.children import Job
    from processor.backfill.decode import _Decoders, decode_object
    from processor.backfill.encode import ArrowRows
    from processor.backfill.fetch import default_opener
    from processor.backfill.run import _streams, fewer_gc_passes
    from processor.core.hit import Hit

    job: Job = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by the parent process
    out = sys.stdout.buffer

    def emit(hits: list[Hit]) -> None:
        write_frame(out, "payload", job.encode(hits))

    def lines(n: int) -> None:
        write_frame(out, "lines", n)

    def rows(batch: Any) -> None:
        write_frame(out, "payload", batch)

    try:
        s3 = None
        if any(o.is_s3 for o in job.objects):
            import boto3

            s3 = boto3.client("s3")
        decoders = _Decoders(job.ctx)
        with fewer_gc_passes():
            for obj, stream in _streams(
                job.objects, default_opener(s3, job.policy), job.read_ahead
            ):
                entry = decode_object(
                    obj,
                    stream,
                    decoders,
                    job.mode,
                    emit,
                    lines,
                    job.window,
                    rows if isinstance(job.encode, ArrowRows) else None,
                )
                write_frame(out, "done", entry)
        write_frame(out, "end", None)
    except BrokenPipeError:
        return 1  # the parent is gone
    except Exception as exc:
        write_frame(out, "error", f"{type(exc).__name__}: {exc}")
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
