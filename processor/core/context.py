"""What a decoder needs to know about the deployment (pure values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IpPrivacy = Literal["truncate", "full", "drop"]


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """Deployment facts every decoder applies the same way.

    ``secrets`` are the pixel HMAC keys (first signs, any verifies); ``pixel_only`` makes a
    decoder return ``None`` for requests that are not for ``pixel_path``.
    """

    pixel_path: str = "/o.gif"
    secrets: tuple[bytes, ...] = ()
    ip_privacy: IpPrivacy = "truncate"
    pixel_only: bool = True
