"""Data files shipped with the decoding core (see README.md in this folder)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
APPLE_EGRESS_FILENAME = "apple-egress-ip-ranges.csv"
APPLE_EGRESS_SEED = DATA_DIR / APPLE_EGRESS_FILENAME
APPLE_EGRESS_URL = "https://mask-api.icloud.com/egress-ip-ranges.csv"
