"""Who may talk to the query endpoint and the dashboard: pure checks on a request's headers.

- **DNS rebinding**: the ``Host`` header must name this server (a loopback name, the bind
  address, or ``OPENS_QUERY_ALLOWED_HOSTS``); a page that rebinds its own name to 127.0.0.1
  sends its own name.
- **Cross-site requests**: a browser marks them (``Origin``, ``Sec-Fetch-Site``); any origin but
  this server's is refused, so no other page can make an analyst's browser run a query, even
  one whose answer it cannot read.
- **Authentication**: ClickHouse's own HTTP forms (Basic, ``X-ClickHouse-User``/``-Key``,
  ``user``/``password`` parameters), so clickhouse-connect, curl and Grafana work unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
_SAFE_FETCH_SITES = frozenset({"same-origin", "none"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str:
    """``name`` of ``name:port`` or ``[v6]:port``, lower case; ``""`` for anything else."""
    if not _AUTHORITY.fullmatch(authority):
        return ""
    try:
        return (urlsplit(f"//{authority}").hostname or "").lower()
    except ValueError:
        return ""


@dataclass(frozen=True)
class Guard:
    bind_host: str
    allowed_hosts: frozenset[str] = frozenset()
    user: str = ""
    password: str = ""

    @property
    def auth_required(self) -> bool:
        return bool(self.user)

    def host_allowed(self, host_header: str) -> bool:
        name = _hostname(host_header)
        if not name:
            return False
        return (
            is_loopback(name)
            or name == self.bind_host.lower().strip("[]")
            or name in self.allowed_hosts
        )

    def cross_site(self, headers: Mapping[str, str]) -> str | None:
        """Why a request is a cross-site one a browser made, or ``None``."""
        site = headers.get("Sec-Fetch-Site")
        if site is not None and {s.strip().lower() for s in site.split(",")} - _SAFE_FETCH_SITES:
            return f"Sec-Fetch-Site: {site[:40]}"
        origin = headers.get("Origin")
        if origin is None:
            return None
        if origin.lower() != f"http://{headers.get('Host', '')}".lower():
            return f"Origin {origin[:100]!r} is not this server"
        return None

    def authenticated(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        if not self.auth_required:
            return True
        user, password = credentials(headers, query)
        return hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    def refusal(
        self, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> tuple[int, str] | None:
        """(HTTP status, reason) to refuse the request with, or ``None``."""
        if not self.host_allowed(headers.get("Host", "")):
            return 403, "the Host header does not name this server (OPENS_QUERY_ALLOWED_HOSTS)"
        if reason := self.cross_site(headers):
            return 403, f"cross-site request refused ({reason})"
        if not self.authenticated(headers, query):
            return 401, "authentication failed: wrong user name or password"
        return None


def credentials(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str, str]:
    """The (user, password) a ClickHouse client sent, in any of ClickHouse's HTTP forms."""
    if "X-ClickHouse-User" in headers:
        return headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return user, password
    return query.get("user", ""), query.get("password", "")
