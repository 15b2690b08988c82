"""Data files shipped with the decoding core (see README.md in this folder)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
APPLE_EGRESS_FILENAME = "apple-egress-ip-ranges.csv"
APPLE_EGRESS_SEED = DATA_DIR / APPLE_EGRESS_FILENAME
APPLE_EGRESS_URL = "https://mask-api.icloud.com/egress-ip-ranges.csv"
# When the seed rows were taken (data/README.md); ``opens data update`` replaces the list.
APPLE_EGRESS_SEED_DATE = "2026-11-27"
