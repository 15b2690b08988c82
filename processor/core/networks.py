"""Published network lists (CIDR prefixes and AS numbers) the machine-open rules look hits up in.

Each list is a text file: ``# key: value`` header lines (``list``, ``source``, ``version``,
``date``, ``licence``, ``provenance``), then one entry per line — a prefix (``40.107.0.0/16``,
``2a01:111:f400::/48``) or an AS number (``AS30031``) — optionally followed by a tag (the
gateway vendor). The package ships a snapshot of every list (``processor/core/data/networks/``,
each with its source, licence and date); ``opens data update`` writes fresher copies, in the same
format, to ``$OPENS_DATA_DIR/networks/``, which win whenever they exist.

=============================  ===============================================================
``microsoft-eop``              Exchange Online Protection (endpoint sets 9 and 10): its sandboxes
                               fetch pixels seconds after delivery — never Microsoft's whole space
``gateways``                   Proofpoint, Mimecast, Barracuda, Cisco (IronPort) prefixes and ASNs
``google-special-crawlers``    Google's special-crawler ranges (EmailEngine drops these)
``google-user-triggered-...``  Google's user-triggered fetchers
=============================  ===============================================================

A lookup is a shift and a dict probe per distinct prefix length, longest first, so the most
specific entry wins; an address wins over the AS number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from processor.core.data import DATA_DIR
from processor.core.privacy import ip_to_int

__all__ = [
    "NETWORK_LISTS",
    "ListInfo",
    "NetworkIndex",
    "network_list_path",
    "parse_network_list",
    "read_list_info",
]

SHIPPED_NETWORKS = DATA_DIR / "networks"

# name -> the label a hit from it gets (``Classifier`` decides what a label means).
NETWORK_LISTS: dict[str, str] = {
    "microsoft-eop": "microsoft-eop",
    "gateways": "gateway",
    "google-special-crawlers": "google-fetcher",
    "google-user-triggered-fetchers": "google-fetcher",
}


@dataclass(frozen=True, slots=True)
class ListInfo:
    """A list file's header: where it came from, which version, when."""

    name: str
    path: Path
    source: str = ""
    version: str = ""
    date: str = ""
    licence: str = ""
    entries: int = 0


@dataclass(slots=True)
class Parsed:
    """Entries of one list file: ``(version, prefix_len, network_int, tag)`` and AS numbers."""

    prefixes: list[tuple[int, int, int, str]] = field(default_factory=list)
    asns: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)
    rejected: int = 0


def _prefix(text: str) -> tuple[int, int, int] | None:
    addr, sep, length = text.partition("/")
    parsed = ip_to_int(addr)
    if parsed is None:
        return None
    version, n = parsed
    bits = 32 if version == 4 else 128
    if not sep:
        return version, bits, n
    if not length.isdigit() or not 0 <= int(length) <= bits:
        return None
    plen = int(length)
    return version, plen, n >> (bits - plen)


def parse_network_list(lines: Iterable[str]) -> Parsed:
    """Header, prefixes and AS numbers of one list; malformed lines are counted, not fatal."""
    out = Parsed()
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip().isidentifier() and key.strip() not in out.header:
                out.header[key.strip()] = value.strip()
            continue
        entry, _, tag = line.partition(" ")
        tag = tag.strip()
        if entry[:2].upper() == "AS" and entry[2:].isdigit():
            out.asns[str(int(entry[2:]))] = tag
            continue
        prefix = _prefix(entry)
        if prefix is None:
            out.rejected += 1
            continue
        out.prefixes.append((*prefix, tag))
    return out


def network_list_path(name: str, data_dir: Path | None) -> Path:
    """The downloaded copy under ``data_dir/networks`` when present, else the shipped one."""
    if data_dir is not None:
        candidate = data_dir / "networks" / f"{name}.txt"
        if candidate.is_file():
            return candidate
    return SHIPPED_NETWORKS / f"{name}.txt"


def read_list_info(name: str, path: Path) -> ListInfo:
    with path.open(encoding="utf-8", errors="replace") as fh:
        parsed = parse_network_list(fh)
    h = parsed.header
    return ListInfo(
        name,
        path,
        h.get("source", ""),
        h.get("version", ""),
        h.get("date", ""),
        h.get("licence", ""),
        len(parsed.prefixes) + len(parsed.asns),
    )


class NetworkIndex:
    """Labelled prefixes and AS numbers of several lists, with one ``lookup(ip, asn)``.

    The label is ``NETWORK_LISTS[name]``, with the entry's tag after a colon when it has one
    (``gateway:mimecast``).
    """

    __slots__ = ("_asn", "_v4", "_v6", "lists", "v4_keys")

    def __init__(self) -> None:
        # The /16 networks that hold any listed IPv4 prefix: an address outside them is in no
        # list, decided with one set probe (the native core asks the same set).
        self.v4_keys: set[int] = set()
        self._v4: list[tuple[int, dict[int, str]]] = []
        self._v6: list[tuple[int, dict[int, str]]] = []
        self._asn: dict[str, str] = {}
        self.lists: list[ListInfo] = []

    @classmethod
    def load(cls, data_dir: Path | None, names: Iterable[str] = NETWORK_LISTS) -> NetworkIndex:
        index = cls()
        for name in names:
            path = network_list_path(name, data_dir)
            if path.is_file():
                with path.open(encoding="utf-8", errors="replace") as fh:
                    index.add(name, parse_network_list(fh), path)
        return index

    def add(self, name: str, parsed: Parsed, path: Path | None = None) -> None:
        base = NETWORK_LISTS.get(name, name)
        v4 = dict(self._v4)
        v6 = dict(self._v6)
        for version, plen, net, tag in parsed.prefixes:
            label = f"{base}:{tag}" if tag else base
            (v4 if version == 4 else v6).setdefault(plen, {}).setdefault(net, label)
            if version == 4:
                start = (net << (32 - plen)) >> 16
                self.v4_keys.update(range(start, start + (1 << max(0, 16 - plen))))
        for asn, tag in parsed.asns.items():
            self._asn.setdefault(asn, f"{base}:{tag}" if tag else base)
        self._v4 = sorted(v4.items(), reverse=True)
        self._v6 = sorted(v6.items(), reverse=True)
        h = parsed.header
        self.lists.append(
            ListInfo(
                name,
                path or Path(name),
                h.get("source", ""),
                h.get("version", ""),
                h.get("date", ""),
                h.get("licence", ""),
                len(parsed.prefixes) + len(parsed.asns),
            )
        )

    def lookup_ip(self, ip: str, *, coarse: bool = False) -> str:
        """The label of the most specific prefix holding ``ip``, or ``""``. ``coarse``: only
        prefixes no longer than /24 (IPv4) or /48 (IPv6), the ones a truncated address
        (``OPENS_IP_PRIVACY=truncate``) still answers exactly."""
        parsed = ip_to_int(ip)
        if parsed is None:
            return ""
        version, n = parsed
        if version == 4 and (n >> 16) not in self.v4_keys:
            return ""
        bits, table = (32, self._v4) if version == 4 else (128, self._v6)
        longest = (24 if version == 4 else 48) if coarse else bits
        for plen, nets in table:
            if plen > longest:
                continue
            label = nets.get(n >> (bits - plen))
            if label is not None:
                return label
        return ""

    @property
    def asns(self) -> frozenset[str]:
        return frozenset(self._asn)

    def lookup_asn(self, asn: str) -> str:
        return self._asn.get(asn.upper().removeprefix("AS"), "") if asn else ""
