"""What a run would do or did: one ``Change`` per resource, rendered as a table or JSON.

``plan --format json`` is a DESIGN §4 contract: an array of ``{resource, name, action}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["create", "update", "delete", "none", "unsupported"]


@dataclass(frozen=True)
class Change:
    """One resource's outcome. ``details`` names what differs (``encryption``, ``tags`` …)."""

    resource: str
    name: str
    action: Action
    details: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, str]:
        return {"resource": self.resource, "name": self.name, "action": self.action}


def plan_json(changes: Sequence[Change]) -> list[dict[str, str]]:
    return [c.as_json() for c in changes]


def pending(changes: Sequence[Change]) -> list[Change]:
    """Changes that would touch the account (``none`` and ``unsupported`` do not)."""
    return [c for c in changes if c.action in ("create", "update", "delete")]


_PAST = {"create": "created", "update": "updated", "delete": "deleted"}


def summary(changes: Sequence[Change], *, done: bool = False) -> str:
    """``2 to create, 1 to update`` for a plan; ``created 2, updated 1`` after a run."""
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.action] = counts.get(c.action, 0) + 1
    parts = [
        f"{_PAST[a]} {counts[a]}" if done else f"{counts[a]} to {a}"
        for a in ("create", "update", "delete")
        if counts.get(a)
    ]
    if counts.get("unsupported"):
        parts.append(f"{counts['unsupported']} unsupported by this endpoint")
    if not pending(changes):
        parts.insert(0, "nothing to do")
    return ", ".join(parts)
