"""The protocol every resource follows, and the run context they share.

A resource knows how to *read* itself (does it exist? what are its outputs?), how to *create* the
bare thing, what *drifts* from the wanted state (each difference with its own fix), whether it is
*owned* by this stack, and how to *delete* (or, for a distribution we only attached to,
*release*) it. ``infra.runner`` turns that into plan, apply, destroy and status. Because create
makes only the bare resource and every setting is a drift fix, an apply that stopped half-way is
completed by the next one: it finds the resource and fixes what is still missing.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from infra.aws import Clients
from infra.errors import DeployTimeout
from infra.policies import realtime_log_config_arn, role_arn, stream_arn
from infra.settings import InfraSettings


@dataclass
class Env:
    """Everything a run shares: settings, clients, the account, and outputs of earlier steps."""

    infra: InfraSettings
    clients: Clients
    account_id: str
    stream_name: str
    realtime_fields: tuple[str, ...]
    pixel_path: str
    allow_missing_apis: bool = False
    sleep: Callable[[float], None] = time.sleep
    # Outputs learnt while reading or creating (None until known).
    oac_id: str | None = None
    distribution_id: str | None = None
    distribution_arn: str | None = None
    distribution_domain: str | None = None
    realtime_arn: str | None = None
    unsupported: set[str] = field(default_factory=set)

    @property
    def region(self) -> str:
        return self.clients.region

    @property
    def stream_arn(self) -> str:
        return stream_arn(self.region, self.account_id, self.stream_name)

    @property
    def role_arn(self) -> str:
        return role_arn(self.account_id, self.infra.role_name)

    @property
    def realtime_log_config_arn(self) -> str | None:
        """None when the endpoint has no real-time log configs (the behaviour then has none)."""
        if "realtime-log-config" in self.unsupported:
            return None
        return self.realtime_arn or realtime_log_config_arn(
            self.account_id, self.infra.realtime_log_config
        )

    @property
    def pixel_key(self) -> str:
        return self.pixel_path.lstrip("/")

    def wait_until(self, what: str, done: Callable[[], bool], *, resource: str) -> None:
        """Poll ``done`` every ``poll_interval`` until true or ``deploy_timeout`` elapsed."""
        deadline = time.monotonic() + self.infra.deploy_timeout
        while not done():
            if time.monotonic() >= deadline:
                msg = f"{what}: not done after {self.infra.deploy_timeout:.0f}s"
                raise DeployTimeout(
                    msg,
                    resource=resource,
                    hint="run the same command again later; it continues from there",
                )
            self.sleep(self.infra.poll_interval)


@dataclass(frozen=True)
class Fix:
    """One difference from the wanted state and the call that removes it."""

    aspect: str
    apply: Callable[[], object]


@dataclass(frozen=True)
class StatusRow:
    resource: str
    name: str
    state: str  # present | missing | unsupported | not managed
    detail: str = ""


class Resource(ABC):
    """One AWS resource. ``read`` must be called first in every run; it records outputs."""

    kind: ClassVar[str]
    # The setting that names it, for messages such as "choose another name with …".
    variable: ClassVar[str]

    def __init__(self, env: Env) -> None:
        self.env = env

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def read(self) -> bool:
        """Whether the resource exists; records its outputs on ``env``. Raises ``MissingApi``."""

    @abstractmethod
    def create(self) -> None:
        """Create the bare resource, tagged; settings are applied by ``drift`` fixes."""

    @abstractmethod
    def drift(self) -> list[Fix]:
        """Differences from the wanted state, in the order their fixes must run."""

    @abstractmethod
    def owned(self) -> bool:
        """Created by this stack (and so ours to change and delete)."""

    @abstractmethod
    def delete(self) -> None: ...

    def adoptable(self) -> bool:
        """An existing resource that is not ours but that apply may change (see distribution)."""
        return False

    def release(self) -> bool:
        """Undo what apply changed on a resource that is not ours; True if something changed."""
        return False

    def describe(self) -> str:
        """One line for ``status``, after ``read`` returned True."""
        return ""
