"""Typed outcomes of decoding: a decoder never raises on bad data (STYLE §3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Failure:
    """A record or line that could not be decoded; keeps the raw input for the dead letters.

    ``reason`` is a short stable token (``field_count``, ``bad_timestamp`` ...) used as a
    metrics label; ``field`` names the offending field when there is one.
    """

    reason: str
    raw: bytes
    field: str | None = None
    detail: str = ""
