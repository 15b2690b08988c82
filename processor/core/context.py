"""What a decoder needs to know about the deployment (pure values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IpPrivacy = Literal["truncate", "full", "drop"]


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """Deployment facts every decoder applies the same way.

    ``secrets`` are the pixel HMAC keys (first signs, any verifies); ``pixel_only`` makes a
    decoder return ``None`` for requests that are not for ``pixel_path``. ``data_dir`` is where
    ``opens data update`` stores Apple's egress list (the shipped seed is used when absent).
    ``legacy_campaign_param`` names the query key a legacy ``subscriber=`` pixel takes its
    campaign from (DESIGN §3: ``category`` unless configured otherwise).
    """

    pixel_path: str = "/o.gif"
    secrets: tuple[bytes, ...] = ()
    ip_privacy: IpPrivacy = "truncate"
    pixel_only: bool = True
    data_dir: Path | None = None
    legacy_campaign_param: str = "category"
