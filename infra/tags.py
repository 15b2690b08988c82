"""What marks a resource as created by ``opens infra apply``: two tags, read back before delete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MANAGED_KEY = "opens:managed"
STACK_KEY = "opens:stack"
# On a pre-existing distribution we attached to: what to undo on destroy (never opens:managed).
ATTACHED_KEY = "opens:attached"


def managed_tags(stack: str) -> dict[str, str]:
    return {MANAGED_KEY: "true", STACK_KEY: stack}


def is_managed(tags: Mapping[str, str], stack: str) -> bool:
    return tags.get(MANAGED_KEY) == "true" and tags.get(STACK_KEY) == stack


def as_list(tags: Mapping[str, str]) -> Any:
    """``[{"Key": k, "Value": v}]``, the shape S3, IAM and CloudFront take.

    Typed ``Any`` on purpose: each service's stubs declare their own identical ``TagTypeDef``.
    """
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def from_list(items: Iterable[Mapping[str, object]]) -> dict[str, str]:
    return {str(item["Key"]): str(item.get("Value", "")) for item in items}


def missing(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}
