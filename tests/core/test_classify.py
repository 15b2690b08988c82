"""Machine-open, client and device classification (machine-opens.md §4)."""

from __future__ import annotations

import pytest

from processor.core.classify import MACHINE_FAMILIES, Classifier
from processor.core.egress import EgressRanges, parse_egress_csv
from processor.core.privacy import ip_to_int

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
        ("Mozilla/5.0", "198.51.100.7", "", "unknown_bot", "Apple Mail", "proxy"),
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
            "yahoo_proxy",
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
