"""Machine-open, client and device classification (machine-opens.md §4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.classify import (
    MACHINE_FAMILIES,
    RULES_VERSION,
    Classifier,
    Tag,
    parse_signals,
    signals_text,
    timing_tag,
)
from processor.core.egress import EgressRanges, parse_egress_csv
from processor.core.networks import NETWORK_LISTS, NetworkIndex
from processor.core.privacy import ip_to_int
from processor.core.text import prefetch_header

pytestmark = pytest.mark.unit

GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)


@pytest.mark.parametrize(
    ("ua", "ip", "asn", "machine", "client", "device"),
    [
        ("Mozilla/5.0", "172.224.226.5", "", "apple_mpp", "Apple Mail", "proxy"),
        ("Mozilla/5.0", "2a02:26f7:b3c0:4000::17", "", "apple_mpp", "Apple Mail", "proxy"),
        # Apple MPP's agent outside the (shipped seed of the) egress list: still apple_mpp,
        # probable (test_issue_table checks the certainty).
        ("Mozilla/5.0", "198.51.100.7", "", "apple_mpp", "Apple Mail", "proxy"),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            "66.249.93.12",
            "15169",
            None,
            "Gmail (Google Image Proxy)",
            "proxy",
        ),
        (GMAIL_PREFETCH, "66.102.8.1", "15169", "gmail_prefetch", "Gmail", "proxy"),
        (GMAIL_PREFETCH, "40.94.1.1", "8075", "microsoft_scanner", "Gmail", "proxy"),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "98.136.1.1",
            "",
            None,  # Yahoo's image cache fetches when the person opens: a human open
            "Yahoo Mail (proxy)",
            "proxy",
        ),
        (
            "Mozilla/5.0 (compatible; YandexImageResizer/2.0; +http://yandex.com/bots)",
            "5.255.1.1",
            "",
            "security_scanner",
            "YandexImageResizer",
            "bot",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/100.0.4896.88 Safari/537.36",
            "81.2.69.143",
            "",
            "unknown_bot",
            "HeadlessChrome",
            "bot",
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "66.249.65.178",
            "",
            "unknown_bot",
            "Googlebot",
            "bot",
        ),
        ("curl/8.7.1", "32.142.164.10", "", "unknown_bot", "curl", "bot"),
        ("", "192.0.2.1", "", "unknown_bot", "", "unknown"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148",
            # Private Relay carries Safari users too: the address alone is no proof.
            "172.224.226.5",
            "",
            None,
            "Apple Mail",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko)",
            "192.0.2.1",
            "",
            None,
            "Apple Mail",
            "desktop",
        ),
        (
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)",
            "192.0.2.1",
            "",
            None,
            "Outlook",
            "desktop",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/119.0.0.0 Mobile Safari/537.36",
            "192.0.2.1",
            "",
            None,
            "Chrome Mobile",
            "mobile",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148",
            "192.0.2.1",
            "",
            None,
            "Apple Mail",
            "tablet",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Thunderbird/115.5.0",
            "192.0.2.1",
            "",
            None,
            "Thunderbird",
            "desktop",
        ),
    ],
)
def test_agents(
    classifier: Classifier,
    ua: str,
    ip: str,
    asn: str,
    machine: str | None,
    client: str,
    device: str,
) -> None:
    verdict = classifier.explain(ua, "GET", ip, "", asn)
    assert (verdict.machine, verdict.client, verdict.device) == (machine, client, device)
    assert verdict.machine is None or verdict.machine in MACHINE_FAMILIES
    assert verdict.reason or verdict.machine is None


def test_head_requests_are_machine_opens(classifier: Classifier) -> None:
    ua = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)"
    verdict = classifier.explain(ua, "HEAD", "192.0.2.1")
    assert (verdict.machine, verdict.reason) == ("unknown_bot", "HEAD request")
    assert classifier.explain(ua, "GET", "192.0.2.1").machine is None


@pytest.mark.parametrize(
    ("referer", "machine"),
    [
        ("https://nam02.safelinks.protection.outlook.com/?url=x", "microsoft_scanner"),
        ("https://urldefense.proofpoint.com/v2/url?u=x", "security_scanner"),
        ("https://protect-eu.mimecast.com/s/abc", "security_scanner"),
        ("https://linkprotect.cudasvc.com/url?a=x", "security_scanner"),
        ("https://mail.google.com/", None),
        ("https://evilmimecast.com.example/", None),
    ],
)
def test_link_rewriters_in_the_referer(
    classifier: Classifier, referer: str, machine: str | None
) -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    assert classifier.explain(ua, "GET", "192.0.2.1", referer).machine == machine


def test_egress_ranges_lookup() -> None:
    entries, rejected = parse_egress_csv(
        [
            "172.224.226.0/27,GB,GB-EN,London,",
            "172.224.226.32/31,GB,GB-SC,Aberdeen,",
            "2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles,",
            "",
            "not-an-ip/12,US,,,",
            "10.0.0.0/99,US,,,",
        ]
    )
    assert rejected == 2
    ranges = EgressRanges(entries)
    assert ranges.count == 3
    assert ranges.contains("172.224.226.31")
    assert not ranges.contains("172.224.226.34")
    assert ranges.contains("172.224.226.33")
    assert ranges.contains("2a02:26f7:b3c0:4000:ffff::1")
    assert not ranges.contains("2a02:26f7:b3c0:4001::1")
    assert not ranges.contains("garbage")
    assert ip_to_int("1.2.3.4") == (4, 0x01020304)


def test_shipped_seed_file_loads_and_a_loader_runs_lazily() -> None:
    calls: list[int] = []

    def load() -> EgressRanges:
        calls.append(1)
        entries, _ = parse_egress_csv(["172.224.226.0/27,GB,GB-EN,London,"])
        return EgressRanges(entries)

    lazy = Classifier(load)
    lazy.explain("Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/119.0")
    assert calls == []
    assert lazy.explain("Mozilla/5.0", ip="172.224.226.1").machine == "apple_mpp"
    assert calls == [1]
    seeded = Classifier()  # the seed shipped in processor/core/data
    assert seeded.egress.count >= 10
    assert seeded.explain("Mozilla/5.0", ip="172.224.226.1").machine == "apple_mpp"


CHROME_79 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/79.0.3945.130 Safari/537.36"
)
CHROME_120 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
EDGE_120 = CHROME_120 + " Edg/120.0.2210.91"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"


@pytest.mark.parametrize(
    ("ua", "ip", "asn", "expected"),
    [
        # The four rows of issue #17.
        (CHROME_79, "40.107.22.51", "8075", ("microsoft_scanner", "", "certain")),
        (CHROME_120, "205.139.111.9", "30031", ("security_scanner", "", "probable")),
        (YAHOO, "98.136.1.1", "36647", (None, "yahoo", "")),
        (EDGE_120, "52.96.40.10", "8075", (None, "microsoft", "")),
        # More of the same axes.
        ("Mozilla/5.0", "198.51.100.7", "", ("apple_mpp", "apple", "probable")),
        ("Mozilla/5.0", "172.224.226.5", "", ("apple_mpp", "apple", "certain")),
        (GMAIL_PREFETCH, "66.102.8.1", "15169", ("gmail_prefetch", "google", "certain")),
        (GMAIL_PREFETCH, "203.0.113.9", "", ("gmail_prefetch", "google", "probable")),
        (GMAIL_PREFETCH, "40.94.1.1", "8075", ("microsoft_scanner", "", "certain")),
        (CHROME_79, "20.1.2.3", "8075", ("microsoft_scanner", "", "probable")),
        (CHROME_79, "81.2.69.143", "3320", (None, "", "")),
        (CHROME_120, "64.235.150.1", "", ("security_scanner", "", "probable")),
        (CHROME_120, "66.249.87.5", "15169", ("unknown_bot", "", "probable")),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
            "GoogleImageProxy)",
            "66.249.87.5",
            "15169",
            (None, "google", ""),
        ),
        (CHROME_120, "2a01:111:f400:7e00::12", "8075", ("microsoft_scanner", "", "certain")),
        ("", "81.2.69.143", "3320", ("unknown_bot", "", "certain")),
    ],
)
def test_issue_table(
    classifier: Classifier, ua: str, ip: str, asn: str, expected: tuple[str | None, str, str]
) -> None:
    v = classifier.explain(ua, "GET", ip, "", asn)
    assert (v.machine, v.proxy, v.certainty) == expected
    tag = classifier.tag(classifier.agent(ua), "GET", ip, "", asn)
    assert (tag[0], tag[1], tag[2]) == expected
    assert tag[3] == RULES_VERSION


def test_prefetch_headers_and_head() -> None:
    c = Classifier()
    assert c.explain(CHROME_120, "GET", "81.2.69.143", prefetch=True).machine == "unknown_bot"
    assert prefetch_header("Host:x%0ASec-Purpose:prefetch%3Bprerender%0A")
    assert prefetch_header("X-Moz:prefetch")
    assert not prefetch_header("Purpose:nothing%0AX-Moz:")
    assert not prefetch_header("User-Agent:prefetch")
    assert c.explain(YAHOO, "HEAD").machine == "unknown_bot"


def test_timing_makes_a_person_probable() -> None:
    person: Tag = (None, "google", "", RULES_VERSION, "")
    machine: Tag = ("apple_mpp", "apple", "certain", RULES_VERSION, "")
    assert timing_tag(person, 1_000_500, 1_000_000, 2_000)[:3] == (
        "unknown_bot",
        "google",
        "probable",
    )
    assert timing_tag(person, 1_002_000, 1_000_000, 2_000) == person
    assert timing_tag(person, 999_000, 1_000_000, 2_000) == person  # before the send
    assert timing_tag(person, 1_000_500, None, 2_000) == person
    assert timing_tag(machine, 1_000_500, 1_000_000, 2_000) == machine


def test_signals_round_trip() -> None:
    assert parse_signals(signals_text("8075", "microsoft-eop", True)) == (
        "8075",
        "microsoft-eop",
        True,
    )
    assert parse_signals("") == ("", "", False)


def test_network_lists_ship_with_provenance() -> None:
    index = NetworkIndex.load(None)
    names = {info.name for info in index.lists}
    assert names == set(NETWORK_LISTS)
    for info in index.lists:
        assert "https://" in info.source and info.date and info.licence and info.entries
    assert index.lookup_ip("40.107.1.1") == "microsoft-eop"
    assert index.lookup_ip("52.96.1.1") == ""  # Outlook.com/OWA: not EOP
    assert index.lookup_asn("AS30031") == "gateway:mimecast"
    assert index.lookup_asn("8075") == ""


ips = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(
    ua=st.one_of(st.sampled_from([CHROME_79, CHROME_120, EDGE_120, YAHOO, "Mozilla/5.0", ""])),
    ip=ips,
    asn=st.sampled_from(["", "8075", "15169", "30031", "3320", "7922"]),
    method=st.sampled_from(["GET", "HEAD"]),
    prefetch=st.booleans(),
)
def test_tag_agrees_with_explain(ua: str, ip: str, asn: str, method: str, prefetch: bool) -> None:
    """Properties: ``tag`` (the hot path) and ``explain`` agree; a person has no certainty; a
    machine has one; decisions depend only on (agent, method, network label, AS, prefetch), so
    re-deciding from the stored signals gives the same tag."""
    c = _SHARED
    tag = c.tag(c.agent(ua), method, ip, "", asn, prefetch)
    v = c.explain(ua, method, ip, "", asn, prefetch)
    assert (tag[0], tag[1], tag[2]) == (v.machine, v.proxy, v.certainty)
    assert (tag[0] is None) == (tag[2] == "")
    assert tag[0] is None or tag[0] in MACHINE_FAMILIES
    s_asn, s_net, s_prefetch = parse_signals(tag[4])
    again = c.decide(c.agent(ua), method, s_net, s_asn, "", s_prefetch)
    assert again[:3] == tag[:3]
    if method == "GET" and not prefetch and asn in ("", "3320", "7922") and ua == CHROME_120:
        # An ordinary browser from a residential network is never a machine open.
        assert tag[0] is None or c.network(ip, asn) != ""


_SHARED = Classifier()
