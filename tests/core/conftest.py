"""Fixtures for the pure decoding core: no services, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.egress import EgressRanges, parse_egress_csv

# Real log samples with provenance live beside the repository, never inside it (DESIGN §1).
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"

SECRET = b"test-secret-1"
OLD_SECRET = b"retired-secret-0"

# Egress ranges for tests, in Apple's CSV format (documentation and seed-file prefixes).
EGRESS_CSV = """\
172.224.226.0/27,GB,GB-EN,London,
146.75.136.0/22,US,US-WA,BREMERTON,
2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,
"""


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    entries, _ = parse_egress_csv(EGRESS_CSV.splitlines())
    return Classifier(EgressRanges(entries, source="tests"))


@pytest.fixture
def ctx() -> DecodeContext:
    return DecodeContext(secrets=(SECRET,), ip_privacy="full")


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not present next to the repository")
    return SAMPLES
