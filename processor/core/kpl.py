"""KPL record deaggregation (a no-op for the plain records CloudFront writes).

CloudFront puts one log line per Kinesis record, but another producer writing into the same
stream with the Kinesis Producer Library may aggregate. Wire format (amazon-kinesis-producer
``aggregation-format.md``): magic ``F3 89 9A C2``, a protobuf ``AggregatedRecord``, then the MD5
of the protobuf bytes. Data is treated as aggregated only if all three check out; anything else
is returned as the single plain record it is. A 40-line protobuf reader avoids a dependency on
the generated classes for the two fields that matter (``records`` → ``data``).
"""

from __future__ import annotations

import hashlib

__all__ = ["KPL_MAGIC", "deaggregate"]

KPL_MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) for every field of one message."""
    out: list[tuple[int, int, bytes | int]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, wire, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _Malformed
            out.append((number, wire, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed
        if pos > end:
            raise _Malformed
    return out


def deaggregate(data: bytes) -> list[bytes]:
    """The user records inside ``data``; ``[data]`` when it is not a valid KPL aggregate."""
    if len(data) <= len(KPL_MAGIC) + _DIGEST or not data.startswith(KPL_MAGIC):
        return [data]
    body, digest = data[len(KPL_MAGIC) : -_DIGEST], data[-_DIGEST:]
    if hashlib.md5(body, usedforsecurity=False).digest() != digest:
        return [data]
    try:
        records: list[bytes] = []
        for number, wire, value in _fields(body):
            if number == 3 and wire == 2 and isinstance(value, bytes):
                for inner_number, inner_wire, inner in _fields(value):
                    if inner_number == 3 and inner_wire == 2 and isinstance(inner, bytes):
                        records.append(inner)
    except _Malformed:
        return [data]
    return records
