# ruff: noqa: E501 - a table of user agents and labels reads best one row per line
"""Builds ``machine_opens.csv``: labelled requests from the public sources (issue #17).

Run ``python tests/corpus/build.py`` to rewrite the CSV. Every label comes from the category a
row belongs to — what the cited source says such a request is — never from running the
classifier, so the corpus can disagree with it (``scripts/bench_classify`` prints where).
Sources are machine-opens.md's ids (``docs/machine-opens.md``).
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

OUT = Path(__file__).with_name("machine_opens.csv")
COLUMNS = ("user_agent", "ip", "asn", "method", "headers", "referer")
LABELS = ("proxy", "machine", "certainty", "source")

# People's own clients (Z3 Outlook, uap-core samples, the demo's mailboxes).
HUMAN_UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
)
# Residential networks: (address, ASN) of consumer ISPs (DTAG, Comcast, BT, Orange, Verizon,
# Vodafone DE). None is on any list.
RESIDENTIAL = (
    ("84.150.21.7", "3320"),
    ("73.15.102.44", "7922"),
    ("86.128.3.19", "2856"),
    ("90.24.77.120", "3215"),
    ("108.20.14.9", "701"),
    ("2a02:810d:4b40:1::5", "3209"),
)
CHROME = HUMAN_UAS[6]
EDGE = HUMAN_UAS[8]
GIP = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
STALE = tuple(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    f"Chrome/{v} Safari/537.36"
    for v in ("79.0.3945.130", "80.0.3987.132", "96.0.4664.110")
)
EOP_IPS = ("40.92.18.5", "40.93.7.21", "40.107.22.51", "52.100.4.9", "52.101.200.3",
           "52.103.1.77", "104.47.9.36", "104.47.110.2", "2a01:111:f400:7e1b::3",
           "2a01:111:f403:c100::12")  # fmt: skip
APPLE_IPS = ("172.224.226.5", "172.224.226.33", "146.75.137.200", "146.75.253.246",
             "104.28.30.12", "2a02:26f7:b3c0:4000::17", "2a04:4e41:275f:1700::9",
             "2a09:bac2:b089:100::44")  # fmt: skip


def rows() -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(ua: str, ip: str, asn: str, proxy: str, machine: str, certainty: str, source: str,
            method: str = "GET", headers: str = "", referer: str = "") -> None:  # fmt: skip
        out.append(dict(zip(COLUMNS + LABELS, (ua, ip, asn, method, headers, referer, proxy,
                                               machine, certainty, source), strict=True)))  # fmt: skip

    for ua, (ip, asn) in itertools.product(HUMAN_UAS, RESIDENTIAL):
        add(ua, ip, asn, "", "", "", "person's own client, residential network (Z3, U1)")
    for ip in APPLE_IPS:
        add(
            "Mozilla/5.0",
            ip,
            "",
            "apple",
            "apple_mpp",
            "certain",
            "X5 ClickDimensions: agent and Apple's list",
        )
    for ip, asn in (*RESIDENTIAL, ("17.58.100.4", "714"), ("198.51.100.7", "")):
        add(
            "Mozilla/5.0",
            ip,
            asn,
            "apple",
            "apple_mpp",
            "probable",
            "uap-core#509: MPP's bare agent",
        )
    for i in (12, 40, 93, 84, 88):
        add(
            GIP,
            f"66.249.{i}.{i + 3}",
            "15169",
            "google",
            "",
            "",
            "X2, X9, Z1: image proxy = person",
        )
    add(GIP, "66.102.8.17", "15169", "google", "", "", "X9")
    for ip in ("66.249.87.5", "209.85.238.40"):
        add(GIP, ip, "15169", "google", "", "", "device-detector#5359, mautic#16069")
    for ip in ("66.102.8.1", "66.249.93.20", "74.125.210.9"):
        add(GMAIL_PREFETCH, ip, "15169", "google", "gmail_prefetch", "certain", "B1, X1")
    for ip, asn in RESIDENTIAL[:3]:
        add(
            GMAIL_PREFETCH,
            ip,
            asn,
            "google",
            "gmail_prefetch",
            "probable",
            "B1 (network unconfirmed)",
        )
    for ip in ("40.94.1.1", "20.42.7.9"):
        add(
            GMAIL_PREFETCH,
            ip,
            "8075",
            "",
            "microsoft_scanner",
            "certain",
            "Z2: Edge/12 from Microsoft",
        )
    add(
        GMAIL_PREFETCH + " Gmail-content-sampling",
        "66.102.8.5",
        "15169",
        "google",
        "gmail_prefetch",
        "certain",
        "Z2",
    )
    for ip, ua in itertools.product(EOP_IPS, (*STALE, CHROME)):
        add(
            ua,
            ip,
            "8075",
            "",
            "microsoft_scanner",
            "certain",
            "§7 EOP sets 9/10; gophish#2549, #2803",
        )
    for ip in ("52.96.40.10", "40.96.12.4", "52.97.133.8", "40.99.4.66"):
        for ua in (EDGE, CHROME):
            add(ua, ip, "8075", "microsoft", "", "", "§7: Outlook.com/OWA image proxy is a person")
    for ip, ua in itertools.product(("20.42.7.9", "13.89.1.2"), STALE):
        add(
            ua,
            ip,
            "8075",
            "",
            "microsoft_scanner",
            "probable",
            "gophish#2446, mssola/user_agent#71",
        )
    for ip, asn in RESIDENTIAL[:2]:
        for ua in STALE:
            add(ua, ip, asn, "", "", "", "stale Chrome from a residential network: no evidence")
    gateway_asns = ("22843", "26211", "52129", "30031", "39588", "42427", "60492", "16417", "15324")
    for asn in gateway_asns:
        for ua in (CHROME, EDGE):
            add(
                ua,
                f"198.18.{int(asn) % 200}.9",
                asn,
                "",
                "security_scanner",
                "probable",
                "§7 gateway ASNs; mautic#9162",
            )
    for ip in ("67.231.150.4", "148.163.140.22", "205.139.110.61", "207.211.30.14",
               "91.220.42.200", "64.235.150.1", "209.222.82.40"):  # fmt: skip
        add(
            CHROME,
            ip,
            "",
            "",
            "security_scanner",
            "probable",
            "vendor ranges (Q5 Act-On exclusion list)",
        )
    for ua in ("Mozilla/5.0 (compatible; Mimecast URL Protect)", "Barracuda Sentinel (EE)",
               "Proofpoint URL Defense", "Mozilla/5.0 (compatible; IronPort)"):  # fmt: skip
        add(ua, "198.18.7.7", "", "", "security_scanner", "certain", "§4.5 gateway tokens")
    for ua in ("Mozilla/5.0 (compatible; YandexImageResizer/2.0; +http://yandex.com/bots)",):
        add(ua, "5.255.253.1", "13238", "", "security_scanner", "certain", "U5 mautic#8718")
    for ip, asn in (("98.136.10.4", "36647"), ("74.6.231.20", "26101"), ("98.137.64.9", "36647"),
                    ("106.10.1.2", "24572")):  # fmt: skip
        add(YAHOO, ip, asn, "yahoo", "", "", "X3 Validity, Litmus: cached when the person opens")
    for ua, (ip, asn) in itertools.product(HUMAN_UAS[:5], RESIDENTIAL[:2]):
        add(
            ua,
            ip,
            asn,
            "",
            "unknown_bot",
            "certain",
            "civicrm-core#35328, mautic#17263",
            method="HEAD",
        )
    add(YAHOO, "98.136.10.4", "36647", "yahoo", "unknown_bot", "certain", "HEAD", method="HEAD")
    for ip, asn in RESIDENTIAL[:4]:
        add("", ip, asn, "", "unknown_bot", "certain", "warmbly abuse.rs: empty agent")
    for ua in ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.71 Safari/537.36",
               "curl/8.7.1", "python-requests/2.32.3", "Go-http-client/1.1", "Wget/1.21.4",
               "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
               "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
               "okhttp/4.12.0", "axios/1.7.2", "Scrapy/2.11.2 (+https://scrapy.org)"):  # fmt: skip
        add(
            ua,
            "198.18.9.9",
            "16509",
            "",
            "unknown_bot",
            "certain",
            "Z4 headless / crawler / library",
        )
    for ip in ("66.249.87.70", "108.177.2.40", "209.85.238.100", "192.178.16.10"):
        add(
            CHROME,
            ip,
            "15169",
            "",
            "unknown_bot",
            "probable",
            "§7 Google special crawlers (EmailEngine)",
        )
    # Headers as sent, "Name: value" joined by " | " (the corpus runs them through cs-headers).
    for h in ("Sec-Purpose: prefetch", "Purpose: prefetch", "X-Purpose: preview", "X-Moz: prefetch",
              "Sec-Purpose: prefetch;prerender"):  # fmt: skip
        add(
            CHROME,
            "84.150.21.7",
            "3320",
            "",
            "unknown_bot",
            "certain",
            "§7 prefetch headers",
            headers="Host: d.example | " + h,
        )
    add(
        CHROME,
        "84.150.21.7",
        "3320",
        "",
        "",
        "",
        "ordinary headers",
        headers="Host: d.example | Accept: image/*",
    )
    for ref, machine in (("https://nam02.safelinks.protection.outlook.com/?url=x", "microsoft_scanner"),
                         ("https://urldefense.proofpoint.com/v2/url?u=x", "security_scanner"),
                         ("https://urldefense.com/v3/__x", "security_scanner"),
                         ("https://protect-eu.mimecast.com/s/abc", "security_scanner"),
                         ("https://linkprotect.cudasvc.com/url?a=x", "security_scanner"),
                         ("https://secure-web.cisco.com/1abc/x", "security_scanner")):  # fmt: skip
        add(
            CHROME,
            "84.150.21.7",
            "3320",
            "",
            machine,
            "probable",
            "Q1, Q4 rewrite hosts in referer",
            referer=ref,
        )
    add(
        CHROME,
        "84.150.21.7",
        "3320",
        "",
        "",
        "",
        "webmail referer",
        referer="https://mail.google.com/",
    )
    return out


def main() -> None:
    data = rows()
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS + LABELS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    print(f"{len(data)} rows -> {OUT}")


if __name__ == "__main__":
    main()
