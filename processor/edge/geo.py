"""Where simulated viewers come from: a small table of real networks with country and ASN.

CloudFront fills ``c-country`` and ``asn`` from the viewer's address. The local edge does the same
from this table, and the traffic generator draws its clients' addresses from it, so generated
traffic arrives from several countries and providers. Apple's Private Relay egress ranges come
from the seed file the classifier uses (an Apple Mail Privacy Protection prefetch must come
from there to be recognised).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from functools import lru_cache

from processor.core.data import APPLE_EGRESS_SEED

__all__ = ["NETWORKS", "Network", "apple_networks", "locate", "pop_for"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Network:
    """A block of addresses, the country CloudFront would report for it, and its ASN."""

    name: str
    cidr: str
    country: str
    asn: str

    @property
    def network(self) -> IPNetwork:
        return ipaddress.ip_network(self.cidr)

    def address(self, rnd: random.Random) -> str:
        """A host address inside the block (never the network or broadcast address)."""
        net = self.network
        return str(net[rnd.randrange(1, max(2, net.num_addresses - 1))])


# Consumer ISPs per country, and the networks mail proxies and scanners fetch from.
NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("telekom-de", "80.128.0.0/11", "DE", "3320"),
        Network("comcast-us", "73.0.0.0/8", "US", "7922"),
        Network("orange-fr", "90.0.0.0/9", "FR", "3215"),
        Network("bt-gb", "86.128.0.0/10", "GB", "2856"),
        Network("softbank-jp", "126.0.0.0/8", "JP", "17676"),
        Network("google-proxy", "66.249.80.0/20", "US", "15169"),
        Network("yahoo-proxy", "98.136.0.0/14", "US", "36647"),
        Network("aws-us-east", "3.208.0.0/12", "US", "14618"),
    )
}

# Where a viewer in each country is served from (CloudFront's POP naming).
_POPS = {"DE": "FRA56-P1", "US": "IAD89-C1", "FR": "CDG50-P1", "GB": "LHR61-P2", "JP": "NRT57-P3"}
_APPLE_RELAY_ASN = "36183"  # Akamai, one of the Private Relay egress operators


@lru_cache(maxsize=1)
def apple_networks() -> tuple[Network, ...]:
    """Apple's egress prefixes (IPv4) from the shipped seed, with their countries."""
    out = []
    for line in APPLE_EGRESS_SEED.read_text().splitlines():
        parts = line.split(",")
        if len(parts) < 2 or "/" not in parts[0] or ":" in parts[0]:
            continue
        out.append(Network(f"apple-{parts[0]}", parts[0], parts[1], _APPLE_RELAY_ASN))
    return tuple(out)


@lru_cache(maxsize=4096)
def locate(ip: str) -> tuple[str, str]:
    """``(country, asn)`` for a viewer address; ``("", "")`` when it is in no known block."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "", ""
    for net in (*NETWORKS.values(), *apple_networks()):
        if addr.version == net.network.version and addr in net.network:
            return net.country, net.asn
    return "", ""


def pop_for(country: str) -> str:
    """The edge location a viewer from ``country`` would reach."""
    return _POPS.get(country, "IAD89-C1")
