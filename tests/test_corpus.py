"""The labelled corpus (issue #17): every request classified as its sources say, through the
real-time decoder (native core when installed, and the Python reference)."""

from __future__ import annotations

import pytest

from processor.core.classify import Classifier
from processor.core.native import realtime_decoder
from processor.core.realtime import RealtimeDecoder
from tests.corpus import CTX, FIELDS, classify, load

pytestmark = pytest.mark.unit


def test_corpus_is_large_and_cites_its_sources() -> None:
    rows = load()
    assert len(rows) >= 200
    assert all(r.source for r in rows)
    assert {r.machine for r in rows} >= {
        "",
        "apple_mpp",
        "gmail_prefetch",
        "microsoft_scanner",
        "security_scanner",
        "unknown_bot",
    }


@pytest.mark.parametrize("native", [True, False])
def test_corpus_is_classified_as_the_sources_say(native: bool) -> None:
    rows = load()
    classifier = Classifier()  # the shipped snapshots only: a fresh offline install
    decoder = (
        realtime_decoder(FIELDS, CTX, classifier=classifier)
        if native
        else RealtimeDecoder(FIELDS, CTX, classifier=classifier)
    )
    got = classify(rows, decoder)
    wrong = [
        (r.user_agent[:50], r.ip, r.asn, r.method, r.expected, g)
        for r, g in zip(rows, got, strict=True)
        if g != r.expected
    ]
    assert wrong == []


def test_no_person_on_a_residential_network_is_a_machine() -> None:
    rows = [r for r in load() if r.source.startswith("person's own client")]
    assert len(rows) >= 50
    got = classify(rows, RealtimeDecoder(FIELDS, CTX, classifier=Classifier()))
    assert {g[1] for g in got} == {""}
