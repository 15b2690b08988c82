"""What the edge answered to one planned request."""

from __future__ import annotations

from dataclasses import dataclass

from processor.traffic.mix import Planned


@dataclass(frozen=True)
class Sent:
    planned: Planned
    status: int
    request_id: str  # the edge's x-amz-cf-id
