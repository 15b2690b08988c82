"""The simulated fetchers of the pixel: mail clients, mail proxies and scanners.

``client`` is the email-client family the pipeline must report for the agent, and ``machine``
whether the fetch is a machine open (reference/machine-opens.md): the generator's claims, which
the demo checks the pipeline against.
"""

from __future__ import annotations

from dataclasses import dataclass

HOME = "home"  # the subscriber's own ISP, in their country
APPLE = "apple"  # Apple's Private Relay egress


@dataclass(frozen=True)
class Fetcher:
    name: str
    user_agent: str
    client: str
    machine: bool
    network: str = HOME
    method: str = "GET"


FETCHERS: dict[str, Fetcher] = {
    f.name: f
    for f in (
        Fetcher(
            "apple_mail_ios",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148",
            "Apple Mail",
            machine=False,
        ),
        Fetcher(
            "apple_mail_mac",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko)",
            "Apple Mail",
            machine=False,
        ),
        # Mail Privacy Protection: a bare agent from Apple's relay, on delivery.
        Fetcher("apple_mpp", "Mozilla/5.0", "Apple Mail", machine=True, network=APPLE),
        Fetcher(
            "gmail_image_proxy",
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)",
            "Gmail (Google Image Proxy)",
            machine=False,
            network="google-proxy",
        ),
        Fetcher(
            "gmail_prefetch",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0",
            "Gmail",
            machine=True,
            network="google-proxy",
        ),
        Fetcher(
            "outlook",
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
            "Outlook",
            machine=False,
        ),
        Fetcher(
            "thunderbird",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0",
            "Thunderbird",
            machine=False,
        ),
        Fetcher(
            "android_gmail_app",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36",
            "Chrome Mobile WebView",
            machine=False,
        ),
        # Yahoo's image cache fetches when the person opens (a human open through a proxy).
        Fetcher(
            "yahoo_image_proxy",
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "Yahoo Mail (proxy)",
            machine=False,
            network="yahoo-proxy",
        ),
        # Security gateways: a HEAD probe with a browser agent, and a named scanner.
        Fetcher(
            "gateway_head",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "Chrome",
            machine=True,
            network="aws-us-east",
            method="HEAD",
        ),
        Fetcher(
            "mimecast",
            "Mozilla/5.0 (compatible; Mimecast URL Protect)",
            "Other",
            machine=True,
            network="aws-us-east",
        ),
    )
}

# What a subscriber reads mail with: (weight, fetcher of their opens, fetchers on delivery).
# With Mail Privacy Protection on, Apple prefetches on delivery and serves every later open
# from its cache: the person's opens never reach the edge.
MAILBOXES: tuple[tuple[int, str | None, tuple[str, ...]], ...] = (
    (28, None, ("apple_mpp",)),
    (5, "apple_mail_ios", ()),
    (8, "apple_mail_mac", ()),
    (22, "gmail_image_proxy", ()),
    (6, "gmail_image_proxy", ("gmail_prefetch",)),
    (12, "outlook", ()),
    (5, "thunderbird", ()),
    (9, "android_gmail_app", ()),
    (4, "yahoo_image_proxy", ()),
    (4, "outlook", ("gateway_head", "mimecast")),  # behind a corporate gateway
)
