"""What CloudFront logs about one viewer request, before any log format encodes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as it happened at the edge; values are plain text, never log-encoded.

    ``query`` is the query string exactly as the client sent it (no ``?``; ``""`` if none).
    ``ts_ms`` is when the edge finished responding (epoch milliseconds, UTC), which is what both
    CloudFront log formats record. ``headers`` are the request headers in the order received;
    when empty, ``Host`` and ``User-Agent`` stand in for them.
    """

    request_id: str
    ts_ms: int
    method: str
    path: str
    query: str
    status: int
    ip: str
    user_agent: str = ""
    referer: str = ""
    edge: str = "FRA56-P1"
    country: str = ""
    asn: str = ""
    sc_bytes: int = 0
    cs_bytes: int = 0
    time_taken: float = 0.0
    time_to_first_byte: float = 0.0
    host: str = "px.example.com"
    distribution_domain: str = "d111111abcdef8.cloudfront.net"
    protocol: str = "https"
    protocol_version: str = "HTTP/2.0"
    server_ip: str = "65.8.177.136"
    client_port: int = 0
    forwarded_for: str = ""
    result_type: str = "Hit"
    content_type: str = "image/gif"
    content_len: int | None = 43
    headers: tuple[tuple[str, str], ...] = ()
