"""Plan a realistic day of opens for a few campaigns (seeded, so every run plans the same).

Per delivered email: the fetches its mailbox makes on delivery (Apple's prefetch, Gmail's
prefetch, a gateway's probes), then zero or more opens by the person (repeat opens included).
On top: forged signatures (an altered ``sid`` with the original ``sig``), browsers asking for
``/favicon.ico`` and scanners probing other paths (404s), a bot POSTing to the pixel (403).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from urllib.parse import quote

from processor.core.pixel import pixel_url
from processor.edge.geo import NETWORKS, Network, apple_networks
from processor.traffic.clients import APPLE, FETCHERS, HOME, MAILBOXES

__all__ = ["Campaign", "Planned", "TrafficPlan", "plan_traffic"]

HOME_NETWORKS = ("telekom-de", "comcast-us", "orange-fr", "bt-gb", "softbank-jp")


@dataclass(frozen=True)
class Campaign:
    cid: str
    cat: str
    sent_at: str  # ISO 8601, for the sends file


DEFAULT_CAMPAIGNS = (
    Campaign("welcome-2026", "onboarding", "2026-11-27T08:00:00Z"),
    Campaign("black-friday-2026", "promo", "2026-11-27T09:00:00Z"),
    Campaign("digest-w48", "news", "2026-11-27T10:00:00Z"),
)


@dataclass(frozen=True)
class Planned:
    """One HTTP request to send. ``sid``/``cid`` are None for requests that carry none."""

    method: str
    target: str  # path and query, as sent
    ip: str  # the simulated viewer, sent as X-Forwarded-For
    user_agent: str
    fetcher: str  # a FETCHERS name, or a label for non-pixel traffic
    country: str  # where the viewer is (what CloudFront reports from the address)
    sid: str | None = None
    cid: str | None = None
    forged: bool = False


@dataclass
class TrafficPlan:
    campaigns: tuple[Campaign, ...]
    sends: dict[str, int]
    requests: list[Planned] = field(default_factory=list)

    def sends_csv(self) -> str:
        """The file ``opens sends load`` reads: delivered sends per campaign."""
        lines = ["campaign,category,sent_at,sends"]
        lines += [f"{c.cid},{c.cat},{c.sent_at},{self.sends[c.cid]}" for c in self.campaigns]
        return "\n".join(lines) + "\n"


def _target(sid: str, campaign: Campaign, secret: bytes, pixel_path: str) -> str:
    return pixel_url("", sid, campaign.cid, campaign.cat, secret=secret, pixel_path=pixel_path)


def plan_traffic(
    seed: int,
    secret: bytes,
    *,
    subscribers: int = 400,
    campaigns: tuple[Campaign, ...] = DEFAULT_CAMPAIGNS,
    pixel_path: str = "/o.gif",
) -> TrafficPlan:
    """The requests of one simulated send, in a shuffled (seeded) order."""
    rnd = random.Random(seed)  # noqa: S311 - simulation, not secrets
    weights = [w for w, _, _ in MAILBOXES]
    people = []
    for i in range(subscribers):
        _, opener, on_delivery = rnd.choices(MAILBOXES, weights)[0]
        home = NETWORKS[rnd.choice(HOME_NETWORKS)]
        people.append((f"sub-{i:05d}", opener, on_delivery, home))
    apple = apple_networks()

    def viewer(network: str, home: Network) -> tuple[str, str]:
        if network == HOME:
            net = home
        elif network == APPLE:
            net = rnd.choice(apple)
        else:
            net = NETWORKS[network]
        return net.address(rnd), net.country

    plan = TrafficPlan(campaigns, {})
    out = plan.requests
    for campaign in campaigns:
        audience = [p for p in people if rnd.random() < 0.85]
        plan.sends[campaign.cid] = len(audience)
        for sid, opener, on_delivery, home in audience:
            target = _target(sid, campaign, secret, pixel_path)
            for name in on_delivery:
                f = FETCHERS[name]
                for _ in range(2 if name == "apple_mpp" and rnd.random() < 0.2 else 1):
                    ip, country = viewer(f.network, home)
                    out.append(
                        Planned(
                            f.method, target, ip, f.user_agent, name, country, sid, campaign.cid
                        )
                    )
            if opener is None:
                continue
            f = FETCHERS[opener]
            for _ in range(rnd.choices((0, 1, 2, 3), (45, 35, 13, 7))[0]):
                ip, country = viewer(f.network, home)
                out.append(
                    Planned(f.method, target, ip, f.user_agent, opener, country, sid, campaign.cid)
                )
                if f.client == "Chrome Mobile WebView" and rnd.random() < 0.3:
                    out.append(Planned("GET", "/favicon.ico", ip, f.user_agent, "favicon", country))
        # Forged: someone edits the sid of a real pixel URL (the signature no longer matches).
        for sid, _, _, home in rnd.sample(audience, k=min(len(audience), 6)):
            other = f"sub-{rnd.randrange(100_000, 999_999)}"
            target = _target(sid, campaign, secret, pixel_path).replace(
                f"sid={quote(sid, safe='')}", f"sid={other}"
            )
            ua = FETCHERS["outlook"].user_agent
            ip, country = viewer(HOME, home)
            out.append(
                Planned("GET", target, ip, ua, "forged", country, other, campaign.cid, forged=True)
            )
    scanner = NETWORKS["aws-us-east"]
    for path in ("/wp-login.php", "/.env", "/robots.txt", pixel_path + ".bak"):
        out.append(Planned("GET", path, scanner.address(rnd), "curl/8.5.0", "probe", "US"))
    out.append(
        Planned(
            "POST",
            _target("sub-00000", campaigns[0], secret, pixel_path),
            scanner.address(rnd),
            "python-requests/2.32.3",
            "post",
            "US",
        )
    )
    rnd.shuffle(out)
    return plan
