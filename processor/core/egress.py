"""Apple's published iCloud Private Relay egress ranges, for the Mail Privacy Protection rule.

Format (Apple's CSV): ``prefix,country,region,city,`` per line. Loading turns each prefix into an
integer network per prefix length, so a lookup is one shift and one set probe per distinct
length (a handful), with no ``ipaddress`` objects on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from processor.core.data import APPLE_EGRESS_FILENAME, APPLE_EGRESS_SEED
from processor.core.privacy import ip_to_int

__all__ = ["EgressRanges", "apple_egress_path", "parse_egress_csv"]


def parse_egress_csv(lines: Iterable[str]) -> tuple[list[tuple[int, int, int]], int]:
    """``([(version, prefix_len, network_int), …], rejected_lines)``; blank lines ignored."""
    out: list[tuple[int, int, int]] = []
    rejected = 0
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        prefix = line.split(",", 1)[0].strip()
        addr, sep, length = prefix.partition("/")
        parsed = ip_to_int(addr)
        if parsed is None:
            rejected += 1
            continue
        version, n = parsed
        bits = 32 if version == 4 else 128
        if sep:
            if not length.isdigit() or not 0 <= int(length) <= bits:
                rejected += 1
                continue
            plen = int(length)
        else:
            plen = bits
        out.append((version, plen, n >> (bits - plen)))
    return out, rejected


class EgressRanges:
    """A set of IPv4/IPv6 prefixes with a fast ``contains``."""

    __slots__ = ("_v4", "_v6", "count", "rejected", "source")

    def __init__(
        self, entries: Iterable[tuple[int, int, int]], *, source: str = "", rejected: int = 0
    ) -> None:
        self._v4: dict[int, set[int]] = {}
        self._v6: dict[int, set[int]] = {}
        count = 0
        for version, plen, net in entries:
            (self._v4 if version == 4 else self._v6).setdefault(plen, set()).add(net)
            count += 1
        self.count = count
        self.rejected = rejected
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> EgressRanges:
        with path.open(encoding="utf-8", errors="replace") as fh:
            entries, rejected = parse_egress_csv(fh)
        return cls(entries, source=str(path), rejected=rejected)

    def contains(self, ip: str) -> bool:
        parsed = ip_to_int(ip)
        if parsed is None:
            return False
        version, n = parsed
        if version == 4:
            return any((n >> (32 - plen)) in nets for plen, nets in self._v4.items())
        return any((n >> (128 - plen)) in nets for plen, nets in self._v6.items())


def apple_egress_path(data_dir: Path | None) -> Path:
    """The downloaded list under ``data_dir`` when present, else the shipped seed."""
    if data_dir is not None:
        candidate = data_dir / APPLE_EGRESS_FILENAME
        if candidate.is_file():
            return candidate
    return APPLE_EGRESS_SEED
