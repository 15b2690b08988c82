"""Machine-open, email-client and device classification, recorded on every hit, never a filter.

A signature is evidence, not proof (reference: machine-opens.md §4), so every hit is kept and the
verdict stored beside the raw user agent; rules can be re-run later. Families:

=====================  ==========================================================================
``apple_mpp``          bare ``Mozilla/5.0`` agent from Apple's published Private Relay egress
                       ranges (the ClickDimensions rule: agent *and* address)
``gmail_prefetch``     Gmail's prefetch agent (``Chrome/42.0.2311.135 … Edge/12.246``) unless it
                       comes from Microsoft's ASN; ``Gmail-content-sampling``
``yahoo_proxy``        ``YahooMailProxy``
``microsoft_scanner``  the Edge/12 agent from Microsoft's ASN; referer on Safe Links
``security_scanner``   gateway tokens (Barracuda, Mimecast, Proofpoint …), their link-rewrite hosts
                       in the referer, Yandex's image resizer
``unknown_bot``        HEAD requests, headless browsers, crawlers, HTTP libraries, an empty agent,
                       a bare ``Mozilla/5.0`` from outside Apple's ranges
=====================  ==========================================================================

Google's image proxy fetches when the person opens the mail: a *human* open, reported with the
client ``Gmail (Google Image Proxy)`` and the device ``proxy``.

The email client family and device class come from ``ua-parser`` (the maintained uap-core
rules), never from hand-written browser regexes. Everything that depends only on the agent is
computed once per distinct agent and cached; the few rules that need the address or ASN run
only for the agents that call for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import ua_parser

from processor.core.egress import EgressRanges, apple_egress_path

__all__ = ["MACHINE_FAMILIES", "AgentInfo", "Classifier", "Verdict"]

MACHINE_FAMILIES = (
    "apple_mpp",
    "gmail_prefetch",
    "yahoo_proxy",
    "microsoft_scanner",
    "security_scanner",
    "unknown_bot",
)

# Rules that need more than the agent; resolved per hit by ``Classifier.machine``.
_NEEDS_APPLE_IP = "?apple"
_NEEDS_ASN = "?edge12"

MICROSOFT_ASNS = frozenset({"8075", "8068", "8069", "12076"})

_GMAIL_PREFETCH_MARK = "Chrome/42.0.2311.135"
_EDGE12_MARK = "Edge/12."

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

_REFERER_HOSTS = (
    ("safelinks.protection.outlook.com", "microsoft_scanner", "Safe Links rewrite in referer"),
    ("urldefense.proofpoint.com", "security_scanner", "Proofpoint rewrite in referer"),
    ("urldefense.com", "security_scanner", "Proofpoint rewrite in referer"),
    ("mimecast.com", "security_scanner", "Mimecast rewrite in referer"),
    ("secure-web.cisco.com", "security_scanner", "Cisco rewrite in referer"),
    ("linkprotect.cudasvc.com", "security_scanner", "Barracuda rewrite in referer"),
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


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What one decoded user agent says; ``rule`` is a machine family, a pending rule or None."""

    user_agent: str
    client: str
    device: str
    rule: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """A machine-open family (``None`` = human) and the rule that decided it."""

    machine: str | None
    reason: str
    client: str
    device: str


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


def describe_agent(ua: str) -> AgentInfo:
    """Classify one decoded user agent (uncached; ``Classifier.agent`` caches this)."""
    if not ua:
        return AgentInfo(ua, "", "unknown", "unknown_bot", "empty user agent")
    if ua == "Mozilla/5.0":
        return AgentInfo(ua, "Apple Mail", "proxy", _NEEDS_APPLE_IP, "bare Mozilla/5.0 agent")
    if "YahooMailProxy" in ua:
        return AgentInfo(ua, "Yahoo Mail (proxy)", "proxy", "yahoo_proxy", "YahooMailProxy agent")
    if "GoogleImageProxy" in ua:
        return AgentInfo(
            ua, "Gmail (Google Image Proxy)", "proxy", None, "Google image proxy: a human open"
        )
    if "Gmail-content-sampling" in ua:
        return AgentInfo(ua, "Gmail", "proxy", "gmail_prefetch", "Gmail content sampling agent")
    if _GMAIL_PREFETCH_MARK in ua and _EDGE12_MARK in ua:
        return AgentInfo(ua, "Gmail", "proxy", _NEEDS_ASN, "Chrome/42 Edge/12.246 prefetch agent")

    parsed = ua_parser.parse(ua)
    family = parsed.user_agent.family if parsed.user_agent else "Other"
    os_family = parsed.os.family if parsed.os else "Other"
    device_family = parsed.device.family if parsed.device else "Other"
    client = _CLIENT_NAMES.get(family, family)
    device = _device_class(ua, os_family, device_family)

    lowered = ua.lower()
    for token, reason in _SCANNER_TOKENS:
        if token in lowered:
            return AgentInfo(ua, client, "bot", "security_scanner", reason)
    if _HEADLESS.search(ua):
        return AgentInfo(ua, client, "bot", "unknown_bot", "headless browser agent")
    if device == "bot" or _TOOLS.search(ua):
        return AgentInfo(ua, client, "bot", "unknown_bot", "crawler or HTTP library agent")
    return AgentInfo(ua, client, device, None, "")


class Classifier:
    """Caches agent descriptions and resolves the address/ASN-dependent rules per hit.

    ``egress`` is Apple's egress list or a zero-argument loader for it (default: the shipped
    seed); it is loaded on the first bare ``Mozilla/5.0`` hit only, so decoding never pays for a
    10 MB list it does not need.
    """

    def __init__(
        self,
        egress: EgressRanges | Callable[[], EgressRanges] | None = None,
        *,
        cache_size: int = 65_536,
    ) -> None:
        self._egress_source = egress
        self._egress: EgressRanges | None = egress if isinstance(egress, EgressRanges) else None
        self.agent: Callable[[str], AgentInfo] = lru_cache(maxsize=cache_size)(describe_agent)
        self._apple_ip: Callable[[str], bool] = lru_cache(maxsize=cache_size)(self._in_apple)
        self._referer_rule: Callable[[str], tuple[str, str] | None] = lru_cache(maxsize=4096)(
            self._referer_lookup
        )

    @property
    def egress(self) -> EgressRanges:
        if self._egress is None:
            source = self._egress_source
            if callable(source):
                self._egress = source()
            else:
                self._egress = EgressRanges.from_file(apple_egress_path(None))
        return self._egress

    def _in_apple(self, ip: str) -> bool:
        return self.egress.contains(ip)

    @staticmethod
    def _referer_lookup(referer: str) -> tuple[str, str] | None:
        host = referer.split("//", 1)[-1].split("/", 1)[0].lower()
        for suffix, family, reason in _REFERER_HOSTS:
            if host == suffix or host.endswith("." + suffix):
                return family, reason
        return None

    def machine(
        self, info: AgentInfo, method: str, ip: str, referer: str = "", asn: str = ""
    ) -> str | None:
        """The machine-open family of one request (``None`` = human). Hot path: keep it lean."""
        rule = info.rule
        if rule is not None:
            if rule == _NEEDS_APPLE_IP:
                return "apple_mpp" if self._apple_ip(ip) else "unknown_bot"
            if rule == _NEEDS_ASN:
                return "microsoft_scanner" if asn in MICROSOFT_ASNS else "gmail_prefetch"
            return rule
        if method == "HEAD":
            return "unknown_bot"
        if referer:
            hit = self._referer_rule(referer)
            if hit is not None:
                return hit[0]
        return None

    def explain(
        self, ua: str, method: str = "GET", ip: str = "", referer: str = "", asn: str = ""
    ) -> Verdict:
        """The verdict with its reason, for ``opens`` diagnostics and re-running rules."""
        info = self.agent(ua)
        machine = self.machine(info, method, ip, referer, asn)
        reason = info.reason
        if info.rule == _NEEDS_APPLE_IP:
            inside = machine == "apple_mpp"
            reason += " from Apple's egress ranges" if inside else " outside Apple's egress ranges"
        elif info.rule == _NEEDS_ASN:
            reason += " from Microsoft's ASN" if machine == "microsoft_scanner" else ""
        elif info.rule is None and machine is not None:
            if method == "HEAD":
                reason = "HEAD request"
            else:
                found = self._referer_rule(referer)
                reason = found[1] if found else reason
        return Verdict(machine, reason, info.client, info.device)
