"""What a user agent alone says: email client family, device class, and the agent's own rule.

The client family and device class come from ``ua-parser`` (the maintained uap-core rules),
never from hand-written browser regexes. Machine-open markers that need only the agent are
decided here, once per distinct agent (``Classifier`` caches it); the rules that also need the
address, ASN, method, referer, headers or send time are in ``classify``. Sources are the
reference's (``docs/machine-opens.md`` lists them per rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ua_parser

__all__ = [
    "NEEDS_APPLE_IP",
    "NEEDS_EDGE12_NETWORK",
    "NEEDS_MICROSOFT_NETWORK",
    "AgentInfo",
    "describe_agent",
]

# Agent rules that need the network as well (resolved per hit by ``Classifier.tag``).
NEEDS_APPLE_IP = "?apple"  # bare Mozilla/5.0: Apple MPP, certain when from Apple's egress list
NEEDS_EDGE12_NETWORK = "?edge12"  # Gmail prefetch agent, unless from Microsoft's network
NEEDS_MICROSOFT_NETWORK = "?stale"  # stale Chrome builds Defender sandboxes use

_GMAIL_PREFETCH_MARK = "Chrome/42.0.2311.135"
_EDGE12_MARK = "Edge/12."

# Defender for Office 365 sandboxes fetch with these frozen Chrome builds (gophish#2446,
# mssola/user_agent#71; machine-opens.md §7): a machine only from Microsoft's network.
_STALE_CHROME = ("Chrome/79.0.3945.", "Chrome/80.0.3987.132", "Chrome/96.0.4664.110")

# Gateway tokens in the agent (machine-opens.md §4.5; Yandex: mautic#8718).
_SCANNER_TOKENS = (
    ("barracuda", "Barracuda gateway agent"),
    ("mimecast", "Mimecast gateway agent"),
    ("proofpoint", "Proofpoint gateway agent"),
    ("urldefense", "Proofpoint URL Defense agent"),
    ("ironport", "Cisco IronPort agent"),
    ("forcepoint", "Forcepoint agent"),
    ("messagelabs", "Symantec MessageLabs agent"),
    ("yandeximageresizer", "Yandex mailbox image scanner"),
)

_HEADLESS = re.compile(
    r"headless|phantomjs|puppeteer|playwright|selenium|slimerjs|webdriver", re.IGNORECASE
)
_TOOLS = re.compile(
    r"^(?:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|java|"
    r"okhttp|apache-httpclient|libwww-perl|node-fetch|axios|undici|scrapy|httpie|"
    r"postmanruntime|insomnia|vscode-restclient|powershell|ruby|php)\b"
    r"|\b(?:bot|crawler|spider|scanner)\b|bot/|crawl",
    re.IGNORECASE,
)

_CLIENT_NAMES = {
    "Mobile Safari UI/WKWebView": "Apple Mail",  # iOS Mail renders with a bare WKWebView agent
    "GmailImageProxy": "Gmail (Google Image Proxy)",
    "YahooMailProxy": "Yahoo Mail (proxy)",
}

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Chrome OS",
        "Fedora",
        "Debian",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
        "Red Hat",
        "SUSE",
        "Mageia",
        "Mint",
        "Arch Linux",
    }
)


def _device_class(ua: str, os_family: str, device_family: str) -> str:
    if device_family == "Spider":
        return "bot"
    if "iPad" in device_family or "Tablet" in device_family or "Kindle" in device_family:
        return "tablet"
    if os_family == "iOS":
        return "mobile"
    if os_family == "Android":
        return "mobile" if "Mobile" in ua else "tablet"
    if os_family in ("Windows Phone", "BlackBerry OS", "Symbian OS", "KaiOS", "Firefox OS"):
        return "mobile"
    if os_family in _DESKTOP_OS or os_family.startswith("Windows"):
        return "desktop"
    return "unknown"


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What one decoded user agent says.

    ``rule`` is a machine family, a ``NEEDS_*`` rule or ``None`` (a person, as far as the agent
    tells); ``certainty`` goes with a machine family; ``proxy`` is the image proxy the agent
    names (``google``, ``yahoo``, ``apple``) or ``""``.
    """

    user_agent: str
    client: str
    device: str
    rule: str | None
    reason: str
    proxy: str = ""
    certainty: str = ""


def _marked(ua: str) -> AgentInfo | None:
    """The agents recognised by a marker, before ua-parser runs."""
    if not ua:
        # warmbly abuse.rs; Collie PR #50 (machine-opens.md §7)
        return AgentInfo(ua, "", "unknown", "unknown_bot", "empty user agent", "", "certain")
    if ua == "Mozilla/5.0":
        # Apple MPP's agent since 2021-09-20 (uap-core#509; Mailgun, ClickDimensions §4.1)
        return AgentInfo(ua, "Apple Mail", "proxy", NEEDS_APPLE_IP, "bare Mozilla/5.0", "apple")
    if "YahooMailProxy" in ua:
        # Yahoo caches the image when the person opens (Validity X3, Litmus): a human open.
        return AgentInfo(
            ua, "Yahoo Mail (proxy)", "proxy", None, "Yahoo's image proxy: a human open", "yahoo"
        )
    if "GoogleImageProxy" in ua:
        # Gmail's image proxy fetches when the person opens (X2, X9; mautic#16069).
        return AgentInfo(
            ua,
            "Gmail (Google Image Proxy)",
            "proxy",
            None,
            "Google image proxy: a human open",
            "google",
        )
    if "Gmail-content-sampling" in ua:
        # mssola/user_agent#71 (Z2)
        return AgentInfo(
            ua,
            "Gmail",
            "proxy",
            "gmail_prefetch",
            "Gmail content sampling agent",
            "google",
            "certain",
        )
    if _GMAIL_PREFETCH_MARK in ua and _EDGE12_MARK in ua:
        # Bird/SparkPost, GMass (B1, X1); Keila PR #164
        return AgentInfo(
            ua,
            "Gmail",
            "proxy",
            NEEDS_EDGE12_NETWORK,
            "Chrome/42 Edge/12.246 prefetch agent",
            "google",
        )
    return None


def describe_agent(ua: str) -> AgentInfo:
    """Classify one decoded user agent (uncached; ``Classifier.agent`` caches this)."""
    marked = _marked(ua)
    if marked is not None:
        return marked
    parsed = ua_parser.parse(ua)
    family = parsed.user_agent.family if parsed.user_agent else "Other"
    os_family = parsed.os.family if parsed.os else "Other"
    device_family = parsed.device.family if parsed.device else "Other"
    client = _CLIENT_NAMES.get(family, family)
    device = _device_class(ua, os_family, device_family)

    lowered = ua.lower()
    for token, reason in _SCANNER_TOKENS:
        if token in lowered:
            return AgentInfo(ua, client, "bot", "security_scanner", reason, "", "certain")
    if _HEADLESS.search(ua):
        reason = "headless browser agent"
        return AgentInfo(ua, client, "bot", "unknown_bot", reason, "", "certain")
    if device == "bot" or _TOOLS.search(ua):
        reason = "crawler or HTTP library agent"
        return AgentInfo(ua, client, "bot", "unknown_bot", reason, "", "certain")
    if any(mark in ua for mark in _STALE_CHROME):
        reason = "stale Chrome build of Defender's sandboxes"
        return AgentInfo(ua, client, device, NEEDS_MICROSOFT_NETWORK, reason)
    return AgentInfo(ua, client, device, None, "")
