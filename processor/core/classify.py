"""Machine-open classification, recorded on every hit, never a filter.

Two axes per hit (Word to the Wise, "Prefetches and proxies", 2024): ``proxy``, the image proxy
that fetched it (``apple``, ``google``, ``yahoo``, ``microsoft`` or ``""``), and ``machine``, the
contract's reason when no person is behind the fetch (``None`` for a person), with a
``certainty`` (``certain`` | ``probable``) and the ``RULES_VERSION`` that decided it. A
signature is evidence, not proof (reference: ``docs/machine-opens.md``), so every hit is kept
with its inputs and the rules can be re-run (``opens reclassify``).

Rules, first match wins (each cites its source; ``docs/machine-opens.md`` has the list):

==================  =========================================================  ===========
machine             signal                                                     certainty
==================  =========================================================  ===========
microsoft_scanner   address in Exchange Online Protection's published ranges   certain
                    (endpoint sets 9/10; gophish#2549, #2803) — any agent
unknown_bot         empty agent (warmbly), headless / crawler / HTTP library   certain
security_scanner    gateway token in the agent (Barracuda, Mimecast …)         certain
gmail_prefetch      ``Gmail-content-sampling``; the Chrome/42 Edge/12.246      certain from
                    agent (Bird/SparkPost, GMass) — ``microsoft_scanner`` from  Google's AS,
                    Microsoft's AS                                              else probable
apple_mpp           bare ``Mozilla/5.0`` (uap-core#509): from Apple's egress    certain /
                    list (ClickDimensions' rule), elsewhere                     probable
unknown_bot         HEAD request (civicrm-core#35328, mautic#17263)            certain
unknown_bot         prefetch header (``Sec-Purpose``/``Purpose``/``X-Purpose``/  certain
                    ``X-Moz``: prefetch, preview, prerender) in ``cs-headers``
security_scanner    address or AS of a gateway (Proofpoint, Mimecast,           probable
                    Barracuda, Cisco; browser isolation can carry a person)
microsoft_scanner   stale Chrome build (79.0.3945, 80.0.3987.132,               probable
                    96.0.4664.110: gophish#2446) from Microsoft's AS
unknown_bot         Google's special-crawler / user-triggered-fetcher ranges,   probable
                    unless the agent is Google's image proxy (EmailEngine)
(referer)           link-rewrite host of Safe Links / a gateway in the referer  probable
unknown_bot         hit within N s of the campaign's send (``timing``: Mautic   probable
                    PR #14593, HubSpot, GMass) — applied where send times are
                    known, never in the decoder
==================  =========================================================  ===========

People behind a proxy: Google's image proxy (``proxy=google``), Yahoo's image cache
(``proxy=yahoo``: it fetches when the person opens, like Google's — Validity, Litmus; its
retries are duplicates of one open, absorbed by the request id and the unique counts), and
Microsoft's own network outside EOP (``proxy=microsoft``: Outlook.com / OWA load images through
Microsoft's image proxy when the person reads). Microsoft's whole address space is never a
machine by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from processor.core.agents import (
    NEEDS_APPLE_IP,
    NEEDS_EDGE12_NETWORK,
    NEEDS_MICROSOFT_NETWORK,
    AgentInfo,
    describe_agent,
)
from processor.core.egress import EgressRanges, apple_egress_path
from processor.core.networks import NetworkIndex

__all__ = [
    "MACHINE_FAMILIES",
    "RULES_VERSION",
    "AgentInfo",
    "Classifier",
    "Tag",
    "Verdict",
    "describe_agent",
    "timing_tag",
]

# Bump whenever a rule changes (lists carry their own versions, see ``opens data update``).
RULES_VERSION = "2026.12.1"

# Families the rules emit. ``yahoo_proxy`` was one until rules 2026.12.1 (now a human open
# with ``proxy=yahoo``); stored rows may still carry it until ``opens reclassify`` runs.
MACHINE_FAMILIES = (
    "apple_mpp",
    "gmail_prefetch",
    "microsoft_scanner",
    "security_scanner",
    "unknown_bot",
)

# Microsoft's ASNs (machine-opens.md §7: 8075, 8074, 12076; 8068/8069 in RIR data).
MICROSOFT_ASNS = frozenset({"8075", "8074", "8068", "8069", "12076"})
GOOGLE_ASNS = frozenset({"15169"})

_REFERER_HOSTS = (
    ("safelinks.protection.outlook.com", "microsoft_scanner", "Safe Links rewrite in referer"),
    ("urldefense.proofpoint.com", "security_scanner", "Proofpoint rewrite in referer"),
    ("urldefense.com", "security_scanner", "Proofpoint rewrite in referer"),
    ("mimecast.com", "security_scanner", "Mimecast rewrite in referer"),
    ("secure-web.cisco.com", "security_scanner", "Cisco rewrite in referer"),
    ("linkprotect.cudasvc.com", "security_scanner", "Barracuda rewrite in referer"),
)

Tag = tuple[str | None, str, str, str, str]
"""``(machine, proxy, certainty, rules_version, signals)`` of one request; ``signals`` holds
the network facts the rules used (``as8075 net:microsoft-eop prefetch``), so stored hits can be
classified again without the full address."""

CERTAIN = "certain"
PROBABLE = "probable"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A request's classification with the rule that decided it (``opens`` diagnostics)."""

    machine: str | None
    reason: str
    client: str
    device: str
    proxy: str = ""
    certainty: str = ""


def signals_text(asn: str, net: str, prefetch: bool) -> str:
    parts = []
    if asn:
        parts.append("as" + asn)
    if net:
        parts.append("net:" + net)
    if prefetch:
        parts.append("prefetch")
    return " ".join(parts)


def parse_signals(text: str) -> tuple[str, str, bool]:
    """``(asn, net, prefetch)`` of a ``signals`` text."""
    asn = net = ""
    prefetch = False
    for part in text.split():
        if part.startswith("as"):
            asn = part[2:]
        elif part.startswith("net:"):
            net = part[4:]
        elif part == "prefetch":
            prefetch = True
    return asn, net, prefetch


def timing_tag(tag: Tag, ts_ms: int, sent_at_ms: int | None, window_ms: int) -> Tag:
    """A person's hit less than ``window_ms`` after the send becomes a probable machine open
    (Mautic's BotRatioHelper: < 2 s; HubSpot; GMass: Gmail opens under a minute). Hits before
    the send time (Custobar saw those) are left alone: the send time may be approximate."""
    if tag[0] is not None or sent_at_ms is None or window_ms <= 0:
        return tag
    if 0 <= ts_ms - sent_at_ms < window_ms:
        return ("unknown_bot", tag[1], PROBABLE, tag[3], tag[4])
    return tag


class Classifier:
    """Caches agent descriptions and network lookups; ``tag`` classifies one request.

    ``egress`` is Apple's egress list or a zero-argument loader for it (default: the shipped
    seed), loaded on the first bare ``Mozilla/5.0`` hit only. ``networks`` is the index of the
    other lists (default: the shipped snapshots, or ``data_dir``'s fresher copies).
    """

    def __init__(
        self,
        egress: EgressRanges | Callable[[], EgressRanges] | None = None,
        *,
        networks: NetworkIndex | None = None,
        data_dir: Path | None = None,
        cache_size: int = 65_536,
    ) -> None:
        self._egress_source = egress
        self._egress: EgressRanges | None = egress if isinstance(egress, EgressRanges) else None
        self.networks = networks if networks is not None else NetworkIndex.load(data_dir)
        self.agent: Callable[[str], AgentInfo] = lru_cache(maxsize=cache_size)(describe_agent)
        self._apple_ip: Callable[[str], bool] = lru_cache(maxsize=cache_size)(self._in_apple)
        self._net_ip: Callable[[str], str] = lru_cache(maxsize=cache_size)(self.networks.lookup_ip)
        self._referer_rule: Callable[[str], tuple[str, str] | None] = lru_cache(maxsize=4096)(
            _referer_lookup
        )
        self._human: dict[tuple[str, str], Tag] = {}
        # What the native core may decide without asking (``fast_path``): a plain agent's GET
        # from an IPv4 address outside these /16s and an AS outside these is a person. Updated in
        # place by ``reload`` so a core holding them sees new lists at once.
        self.fast_v4: set[int] = set()
        self.fast_asns: set[str] = set()
        self._fill_fast_path()

    def _fill_fast_path(self) -> None:
        self.fast_v4.clear()
        self.fast_v4.update(self.networks.v4_keys)
        self.fast_asns.clear()
        self.fast_asns.update(self.networks.asns | MICROSOFT_ASNS)

    def reload(self, data_dir: Path | None) -> None:
        """Use the lists now in ``data_dir`` (after ``opens data update``): decoders that hold
        this classifier pick them up with their next hit."""
        self.networks = NetworkIndex.load(data_dir)
        self._net_ip = lru_cache(maxsize=65_536)(self.networks.lookup_ip)
        self._fill_fast_path()
        if callable(self._egress_source) or self._egress_source is None:
            self._egress = None
        self._apple_ip = lru_cache(maxsize=65_536)(self._in_apple)

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

    def network(self, ip: str, asn: str) -> str:
        """The network label of a request: its address's list, else its AS number's."""
        return (self._net_ip(ip) if ip else "") or self.networks.lookup_asn(asn)

    def tag(
        self,
        info: AgentInfo,
        method: str,
        ip: str,
        referer: str = "",
        asn: str = "",
        prefetch: bool = False,
    ) -> Tag:
        """The ``Tag`` of one request. Hot path: the common person costs a few probes."""
        if info.rule is None and method != "HEAD" and not referer and not prefetch:
            net = self._net_ip(ip) if ip else ""
            if not net and asn not in self.fast_asns and (not asn or asn.isdigit()):
                key = (info.proxy, asn)
                found = self._human.get(key)
                if found is None:
                    signals = "as" + asn if asn else ""
                    found = self._human[key] = (None, info.proxy, "", RULES_VERSION, signals)
                return found
        net = self.network(ip, asn)
        if info.rule == NEEDS_APPLE_IP and self._apple_ip(ip):
            net = net or "apple"
        machine, proxy, certainty, _ = self.decide(info, method, net, asn, referer, prefetch)
        return (machine, proxy, certainty, RULES_VERSION, signals_text(asn, net, prefetch))

    def decide(
        self, info: AgentInfo, method: str, net: str, asn: str, referer: str, prefetch: bool
    ) -> tuple[str | None, str, str, str]:
        """``(machine, proxy, certainty, reason)`` from the request's facts (``net`` is the
        network label, ``apple`` for Apple's egress list); see the module docstring."""
        rule = info.rule
        microsoft = asn in MICROSOFT_ASNS
        if net == "microsoft-eop":
            return "microsoft_scanner", "", CERTAIN, "Exchange Online Protection range"
        if rule == NEEDS_EDGE12_NETWORK:
            if microsoft:
                return "microsoft_scanner", "", CERTAIN, info.reason + " from Microsoft's AS"
            google = asn in GOOGLE_ASNS or net == "google-fetcher"
            reason = info.reason + (" from Google's network" if google else "")
            return "gmail_prefetch", "google", CERTAIN if google else PROBABLE, reason
        if rule == NEEDS_APPLE_IP:
            if net == "apple":
                return "apple_mpp", "apple", CERTAIN, info.reason + " from Apple's egress ranges"
            if not net.startswith("gateway"):
                reason = info.reason + " outside Apple's egress ranges"
                return "apple_mpp", "apple", PROBABLE, reason
        elif rule is not None and rule != NEEDS_MICROSOFT_NETWORK:
            return rule, info.proxy, info.certainty or CERTAIN, info.reason
        if method == "HEAD":
            return "unknown_bot", info.proxy, CERTAIN, "HEAD request"
        if prefetch:
            return "unknown_bot", info.proxy, CERTAIN, "prefetch request header"
        if net.startswith("gateway"):
            vendor = net.partition(":")[2] or "security gateway"
            return "security_scanner", info.proxy, PROBABLE, f"{vendor} network"
        if rule == NEEDS_MICROSOFT_NETWORK and microsoft:
            return "microsoft_scanner", "", PROBABLE, info.reason + " from Microsoft's AS"
        if net == "google-fetcher" and info.proxy != "google":
            return "unknown_bot", "", PROBABLE, "Google crawler/fetcher range"
        if referer:
            found = self._referer_rule(referer)
            if found is not None:
                return found[0], info.proxy, PROBABLE, found[1]
        proxy = info.proxy or ("microsoft" if microsoft else "")
        return None, proxy, "", info.reason

    def retag(self, ua: str, method: str, ip: str, referer: str, signals: str, privacy: str) -> Tag:
        """The ``Tag`` of a *stored* hit (``opens reclassify``): the agent, method and referer
        as stored, the ASN and prefetch flag from ``signals``, and the network looked up again
        in today's lists where the stored address allows it — exactly with ``privacy="full"``;
        with ``truncate`` for prefixes up to /24 (/48), falling back to the label found at
        decode time for finer ones; with ``drop`` the decode-time label only."""
        asn, stored, prefetch = parse_signals(signals)
        info = self.agent(ua)
        if privacy == "full":
            return self.tag(info, method, ip, referer, asn, prefetch)
        coarse = self.networks.lookup_ip(ip, coarse=True) if privacy == "truncate" and ip else ""
        net = coarse or (stored if stored != "apple" else "") or self.networks.lookup_asn(asn)
        if info.rule == NEEDS_APPLE_IP and stored == "apple":
            net = net or "apple"
        machine, proxy, certainty, _ = self.decide(info, method, net, asn, referer, prefetch)
        return (machine, proxy, certainty, RULES_VERSION, signals_text(asn, net, prefetch))

    def explain(
        self,
        ua: str,
        method: str = "GET",
        ip: str = "",
        referer: str = "",
        asn: str = "",
        prefetch: bool = False,
    ) -> Verdict:
        """The verdict with its reason, for ``opens`` diagnostics and re-running rules."""
        info = self.agent(ua)
        net = self.network(ip, asn)
        if info.rule == NEEDS_APPLE_IP and self._apple_ip(ip):
            net = net or "apple"
        machine, proxy, certainty, reason = self.decide(info, method, net, asn, referer, prefetch)
        return Verdict(machine, reason, info.client, info.device, proxy, certainty)


def _referer_lookup(referer: str) -> tuple[str, str] | None:
    host = referer.split("//", 1)[-1].split("/", 1)[0].lower()
    for suffix, family, reason in _REFERER_HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return family, reason
    return None
