"""Client IP treatment (``OPENS_IP_PRIVACY``), applied before a hit leaves the decoder.

``truncate`` (default) keeps the network a person shares with thousands of others: IPv4 /24,
IPv6 /48. ``full`` keeps the address, ``drop`` keeps nothing. A value that is not an IP address
(``-``, ``localhost:8080`` …) cannot be truncated safely and becomes ``""`` under ``truncate``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from functools import lru_cache
from ipaddress import IPv6Address

from processor.core.context import IpPrivacy

__all__ = [
    "IP_FIELDS",
    "ip_to_int",
    "ip_treatment",
    "raw_treatment",
    "treat_ips_in_text",
    "treat_raw_record",
    "truncate_ip",
]

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


# --- raw records kept for debugging (dead letters) ------------------------------------------

# An IPv4 or IPv6 literal standing alone; each candidate is checked by ``ip_to_int`` before it
# is touched, so times (``01:02:03``) and versions (``1.2.3``) stay as they are.
_IP_TOKEN = re.compile(
    r"(?<![\w.:])(?:"
    r"[0-9A-Fa-f:]*:(?:\d{1,3}\.){3}\d{1,3}"  # IPv6 with an IPv4 tail (::ffff:10.0.0.9)
    r"|(?:\d{1,3}\.){3}\d{1,3}"
    r"|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r")(?![\w.:])"
)
_EMPTY = "-"  # CloudFront's own "no value"


def _treat_token(treat: Callable[[str], str], value: str) -> str:
    if ip_to_int(value) is None:
        return value
    return treat(value) or _EMPTY


def treat_ips_in_text(text: str, treat: Callable[[str], str]) -> str:
    """Every IP literal in ``text`` replaced by its treatment (``-`` when that is nothing)."""
    return _IP_TOKEN.sub(lambda m: _treat_token(treat, m.group(0)), text)


def treat_raw_record(
    raw: bytes, treat: Callable[[str], str], *, ip_positions: Sequence[int] = (), n_fields: int = 0
) -> bytes:
    """A raw log line or record as it may be stored: the client IP fields (``ip_positions`` of
    ``n_fields`` TAB-separated fields, when the record has that many) treated as the decoder
    treats them, and any other IP literal in it too (a list in ``x-forwarded-for``, a record
    with the wrong number of fields). Everything else is kept byte for byte, for debugging.

    Pure and total: bytes that are not UTF-8 survive (surrogate escapes), nothing raises.
    """
    text = raw.decode("utf-8", "surrogateescape")
    if ip_positions and n_fields:
        parts = text.split("\t")
        if len(parts) == n_fields:
            for i in ip_positions:
                if parts[i] not in ("", _EMPTY):  # x-forwarded-for may list several
                    parts[i] = ",".join(treat(v.strip()) or _EMPTY for v in parts[i].split(","))
            text = "\t".join(parts)
    return treat_ips_in_text(text, treat).encode("utf-8", "surrogateescape")


def _same(raw: bytes) -> bytes:
    return raw


IP_FIELDS = frozenset({"c-ip", "x-forwarded-for"})  # the client IP fields of CloudFront logs


def raw_treatment(fields: Sequence[str], mode: IpPrivacy) -> Callable[[bytes], bytes]:
    """``treat_raw_record`` for TAB-separated records of ``fields`` in the order they appear
    (real-time: ``fields.canonical_order(selected)``; standard: the file's ``#Fields``)."""
    if mode == "full":  # the decoder keeps the address too: the record stays as it came
        return _same
    treat = ip_treatment(mode)
    positions = tuple(i for i, name in enumerate(fields) if name in IP_FIELDS)

    def apply(raw: bytes) -> bytes:
        return treat_raw_record(raw, treat, ip_positions=positions, n_fields=len(fields))

    return apply
