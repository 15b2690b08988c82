"""What a decoder needs to know about the deployment (pure values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

IpPrivacy = Literal["truncate", "full", "drop"]

# 2006-01-01T00:00:00Z: DESIGN §2's default start of the plausible event-time window (CloudFront
# itself dates from 2008; an earlier "request" is a corrupt or forged line).
EVENT_TIME_MIN_MS = 1_136_073_600_000
EVENT_TIME_MAX_AHEAD_MS = 86_400_000  # ingestion time + 1 day (clock skew, not the future)


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """Deployment facts every decoder applies the same way.

    ``secrets`` are the pixel HMAC keys (first signs, any verifies); ``pixel_only`` makes a
    decoder return ``None`` for requests that are not for ``pixel_path``. ``data_dir`` is where
    ``opens data update`` stores Apple's egress list (the shipped seed is used when absent).
    ``legacy_campaign_param`` names the query key a legacy ``subscriber=`` pixel takes its
    campaign from (DESIGN §3: ``category`` unless configured otherwise).

    ``require_signature`` makes an unsigned pixel ``invalid`` (DESIGN §2: counted under
    ``invalid_hits``, never an open). A line whose event time is before ``event_time_min_ms``
    or more than ``event_time_max_ahead_ms`` past ingestion time is a bad line
    (``implausible_timestamp``); ingestion time is ``now_ms`` when set (tests), else the clock
    at decode time.
    """

    pixel_path: str = "/o.gif"
    secrets: tuple[bytes, ...] = ()
    ip_privacy: IpPrivacy = "truncate"
    pixel_only: bool = True
    data_dir: Path | None = None
    legacy_campaign_param: str = "category"
    require_signature: bool = False
    event_time_min_ms: int = EVENT_TIME_MIN_MS
    event_time_max_ahead_ms: int = EVENT_TIME_MAX_AHEAD_MS
    now_ms: int | None = None
