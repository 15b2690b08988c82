"""Decoded hits → what a sink sends, built where the hits were decoded (possibly another process).

Encoding is the costly Python part of delivery (reading 20 attributes per hit), so it runs beside
the decoder and only compact payloads travel to the writer thread: an Arrow record batch for
ClickHouse (one C-level copy per column; ClickHouse reads Arrow natively over HTTP and in chDB), or
ready-to-send Kafka message values. Both encoders are small frozen values, so a decoding child
process receives them pickled with its job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from processor.core.hit import Hit
from processor.core.native import NativeStandardParser
from processor.sinks.clickhouse.sink import HIT_COLUMNS, hit_columns
from processor.wire import hits_by_partition, hits_message

__all__ = [
    "HITS_SCHEMA",
    "ArrowRows",
    "Encoder",
    "KafkaMessages",
    "KafkaPayload",
    "native_rows",
    "recheck_rows",
    "suspect_rows",
]

HITS_PER_MESSAGE = 500  # one Kafka message stays well under the broker's 1 MB default

# The ``hits`` table's columns as Arrow types ClickHouse converts without loss: ``ts`` as a
# UTC millisecond timestamp (DateTime64(3)), strings for String and LowCardinality(String).
_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("ms", tz="UTC"),
    "status": pa.uint16(),
    "bytes": pa.uint64(),
    "time_taken": pa.float32(),
}
HITS_SCHEMA = pa.schema([(name, _TYPES.get(name, pa.string())) for name in HIT_COLUMNS])

KafkaPayload = list[tuple[int, bytes]]
"""``(partition, message value)`` pairs, in the order they are to be sent."""


class Encoder(Protocol):
    def __call__(self, hits: Sequence[Hit]) -> Any: ...


@dataclass(frozen=True)
class ArrowRows:
    """``--direct``: hits as one Arrow record batch with the ``hits`` table's columns."""

    def __call__(self, hits: Sequence[Hit]) -> pa.RecordBatch:
        columns = hit_columns(hits)
        arrays = []
        for field, values in zip(HITS_SCHEMA, columns, strict=True):
            if field.name == "ts":
                # Epoch ms → timestamp is a zero-copy cast of the int64 buffer.
                arrays.append(pa.array(values, pa.int64()).cast(field.type))
            else:
                arrays.append(pa.array(values, field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=HITS_SCHEMA)


_NUMERIC = {
    "ts": pa.int64(),
    "status": pa.uint16(),
    "bytes": pa.uint64(),
    "time_taken": pa.float32(),
}


def native_rows(columns: tuple[Any, ...]) -> pa.RecordBatch:
    """``NativeStandardParser.take_columns`` as a ``HITS_SCHEMA`` record batch: the core's
    buffers wrapped without a copy (string offsets narrowed to Arrow's 32-bit ``string``)."""
    rows, strings, *numbers = columns
    texts = iter(strings)
    values = dict(zip(("ts", "status", "bytes", "time_taken"), numbers, strict=True))
    arrays = []
    for field in HITS_SCHEMA:
        if field.name in values:
            buffer = pa.py_buffer(values[field.name])
            arrays.append(pa.Array.from_buffers(_NUMERIC[field.name], rows, [None, buffer]))
        else:
            offsets, data = next(texts)
            wide = pa.Array.from_buffers(
                pa.large_string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
            arrays.append(wide.cast(pa.string()))
    arrays[HITS_SCHEMA.get_field_index("ts")] = arrays[HITS_SCHEMA.get_field_index("ts")].cast(
        HITS_SCHEMA.field("ts").type
    )
    return pa.RecordBatch.from_arrays(arrays, schema=HITS_SCHEMA)


def suspect_rows(batch: pa.RecordBatch, low: int, high: int, require: bool) -> list[int]:
    """Rows of a ``native_rows`` batch the reference must decode again — ``native._Suspect``
    on whole columns: event time outside ``[low, high]``, an ``invalid`` signature (maybe v2),
    ``valid`` over a value holding a newline, ``missing`` when signatures are required."""
    if not batch.num_rows:
        return []
    ts = batch.column("ts").cast(pa.int64())
    sig = batch.column("signature")
    mask = pc.or_(pc.less(ts, low), pc.greater(ts, high))
    mask = pc.or_(mask, pc.equal(sig, "invalid"))
    if require:
        mask = pc.or_(mask, pc.equal(sig, "missing"))
    newline = pc.or_(
        pc.match_substring(batch.column("sid"), "\n"),
        pc.or_(
            pc.match_substring(batch.column("cid"), "\n"),
            pc.match_substring(batch.column("cat"), "\n"),
        ),
    )
    mask = pc.or_(mask, pc.and_(pc.equal(sig, "valid"), newline))
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return []
    return [int(i) for i in pc.indices_nonzero(mask).to_pylist()]


def recheck_rows(
    parser: NativeStandardParser, batch: pa.RecordBatch, lines: list[str]
) -> tuple[pa.RecordBatch, list[tuple[int, Any]]]:
    """``batch`` without its ``suspect_rows``, and those rows' lines as the reference decodes
    them: ``(index in lines, Hit | Failure | None)``."""
    low, high = parser.suspect.window.bounds()
    rows = suspect_rows(batch, low, high, parser.suspect.require)
    if not rows:
        return batch, []
    keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows)), pa.array(rows)))
    return batch.filter(keep), list(parser.redo_rows(rows, lines))


@dataclass(frozen=True)
class KafkaMessages:
    """Default mode: message values for the hits topic, partitioned as the worker expects
    (``processor.wire``), at most ``HITS_PER_MESSAGE`` hits each."""

    partitions: int

    def __call__(self, hits: Sequence[Hit]) -> KafkaPayload:
        out: KafkaPayload = []
        for partition, group in sorted(hits_by_partition(hits, self.partitions).items()):
            for i in range(0, len(group), HITS_PER_MESSAGE):
                value = orjson.dumps(hits_message(group[i : i + HITS_PER_MESSAGE]))
                out.append((partition, value))
        return out
