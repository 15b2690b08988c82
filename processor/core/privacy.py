"""Client IP treatment (``OPENS_IP_PRIVACY``), applied before a hit leaves the decoder.

``truncate`` (default) keeps the network a person shares with thousands of others: IPv4 /24,
IPv6 /48. ``full`` keeps the address, ``drop`` keeps nothing. A value that is not an IP address
(``-``, ``localhost:8080`` …) cannot be truncated safely and becomes ``""`` under ``truncate``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv6Address

from processor.core.context import IpPrivacy

__all__ = ["ip_to_int", "ip_treatment", "truncate_ip"]

_V6_MASK_48 = ((1 << 48) - 1) << 80


def ip_to_int(value: str) -> tuple[int, int] | None:
    """``(version, integer)`` for an IPv4/IPv6 literal, ``None`` for anything else."""
    try:
        if ":" in value:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, value), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, value), "big")
    except (OSError, ValueError):
        return None


def truncate_ip(value: str) -> str:
    """IPv4 → its /24 (``192.0.2.0``), IPv6 → its /48 (``2600:1700:2328::``), else ``""``."""
    parsed = ip_to_int(value)
    if parsed is None:
        return ""
    version, n = parsed
    if version == 4:
        n &= 0xFFFFFF00
        return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.0"
    return str(IPv6Address(n & _V6_MASK_48))


_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET


def _truncating(cache_size: int) -> Callable[[str], str]:
    """IPv4 without a cache (one C call and a slice are cheaper than a cache miss), IPv6 cached."""
    v6 = lru_cache(maxsize=cache_size)(truncate_ip)

    def truncate(value: str) -> str:
        if ":" in value:
            return v6(value)
        try:
            _inet_pton(_AF_INET, value)
        except (OSError, ValueError):
            return ""
        return value[: value.rindex(".")] + ".0"

    return truncate


def _full(value: str) -> str:
    return "" if value == "-" else value


def _drop(value: str) -> str:
    return ""


def ip_treatment(mode: IpPrivacy, cache_size: int = 65_536) -> Callable[[str], str]:
    """The function a decoder applies to every client IP for ``mode`` (cached for ``truncate``)."""
    if mode == "full":
        return _full
    if mode == "drop":
        return _drop
    return _truncating(cache_size)
