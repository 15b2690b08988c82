"""The decoding half of a backfill in its own process, so reading and writing use both cores.

Decoding is pure Python and holds the GIL; building and inserting ClickHouse batches does too.
``run_backfill`` therefore starts ``python -m processor.backfill.decoder``: it reads one pickled
``Job`` from stdin, reads and decodes the objects (downloading and gunzipping in a thread of its
own) and writes pickled frames to stdout — ``("hits", rows)``, ``("lines", n)``, ``("done",
ManifestEntry)``, ``("end", None)`` or ``("error", message)``. The pipe's small buffer is the
backpressure: the decoder waits while the writer is behind, so memory stays bounded. A plain
subprocess, not ``multiprocessing``: spawning would re-run the parent's ``__main__`` (``opens``)
and forking a process that holds an embedded ClickHouse is unsafe.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import IO, Any, BinaryIO

from processor.backfill.sources import LogObject
from processor.core.context import DecodeContext
from processor.core.hit import HIT_FIELDS, Hit

__all__ = ["Job", "main", "read_frames", "write_frame"]

_row = attrgetter(*HIT_FIELDS)


@dataclass(frozen=True)
class Job:
    objects: list[LogObject]
    ctx: DecodeContext
    mode: str
    read_ahead: int = 2


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
    from processor.backfill.run import _Decoders, _default_opener, _streams, decode_object

    job: Job = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by the parent process
    out = sys.stdout.buffer

    def emit(hits: list[Hit]) -> None:
        write_frame(out, "hits", [_row(h) for h in hits])

    def lines(n: int) -> None:
        write_frame(out, "lines", n)

    try:
        s3 = None
        if any(o.is_s3 for o in job.objects):
            import boto3

            s3 = boto3.client("s3")
        decoders = _Decoders(job.ctx)
        for obj, stream in _streams(job.objects, _default_opener(s3), job.read_ahead):
            entry = decode_object(obj, stream, decoders, job.mode, emit, lines)
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
