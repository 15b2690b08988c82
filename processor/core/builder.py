"""Assemble a ``Hit`` from the values a decoder extracted — the part every format shares.

Pixel query parsing, signature check, classification and IP privacy happen here and only here,
so a real-time record, a standard log line and an S3 access log line for the same request
produce the same ``Hit`` (apart from ``source`` and what each format can carry).
"""

from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from processor.core.classify import AgentInfo, Classifier
from processor.core.context import DecodeContext
from processor.core.egress import EgressRanges, apple_egress_path
from processor.core.hit import Hit, Source, new_hit
from processor.core.pixel import Signer, pixel_query_values
from processor.core.privacy import ip_treatment

__all__ = ["HitBuilder", "classifier_for", "content_request_id", "reload_classifiers"]


def content_request_id(line: str) -> str:
    """A deterministic id for a line too old to carry ``x-edge-request-id``.

    Derived from the line's content (separators normalised), so reading the same line again —
    from the same file or a copy — yields the same id and still deduplicates. The ``h-`` prefix
    keeps it apart from CloudFront's own ids.
    """
    canonical = "\t".join(line.split()).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(canonical, digest_size=18).digest()
    return "h-" + urlsafe_b64encode(digest).decode("ascii")


_CLASSIFIERS: dict[str, Classifier] = {}


def classifier_for(ctx: DecodeContext) -> Classifier:
    """One shared classifier (and agent cache) per data location (egress and network lists)."""
    key = str(ctx.data_dir)
    found = _CLASSIFIERS.get(key)
    if found is None:
        data_dir = ctx.data_dir

        def load() -> EgressRanges:
            return EgressRanges.from_file(apple_egress_path(data_dir))

        found = _CLASSIFIERS[key] = Classifier(load, data_dir=data_dir)
    return found


def reload_classifiers() -> int:
    """Every shared classifier re-reads its data dir's lists (the worker's refresh)."""
    for key, found in _CLASSIFIERS.items():
        found.reload(None if key == "None" else Path(key))
    return len(_CLASSIFIERS)


class HitBuilder:
    """Turns extracted field values into a ``Hit`` for one source format.

    ``decode_agent`` undoes the format's user-agent encoding (once for real-time logs, once or
    twice for standard logs, nothing for S3); ``escaped_query`` says whether the format carries
    CloudFront's extra ``%25`` escaping in the query (decode once before form parsing).
    """

    __slots__ = (
        "_agent",
        "_escaped",
        "_ip",
        "_legacy",
        "_require",
        "_signer",
        "_tag",
        "classifier",
        "ctx",
        "pixel_path",
        "source",
    )

    def __init__(
        self,
        ctx: DecodeContext,
        source: Source,
        decode_agent: Callable[[str], str],
        *,
        escaped_query: bool = True,
        classifier: Classifier | None = None,
        cache_size: int = 65_536,
    ) -> None:
        self.ctx = ctx
        self.source: Source = source
        self.pixel_path = ctx.pixel_path
        self.classifier = classifier or classifier_for(ctx)
        agent = self.classifier.agent

        def raw_agent(raw: str) -> AgentInfo:
            return agent(decode_agent(raw))

        self._agent: Callable[[str], AgentInfo] = lru_cache(maxsize=cache_size)(raw_agent)
        self._tag = self.classifier.tag
        self._ip = ip_treatment(ctx.ip_privacy, cache_size)
        self._signer = Signer(ctx.secrets)
        self._legacy = ctx.legacy_campaign_param
        self._require = ctx.require_signature
        self._escaped = escaped_query

    def is_pixel_path(self, path: str) -> bool:
        if path == self.pixel_path:
            return True
        return "%" in path and unquote(path) == self.pixel_path

    def build(
        self,
        request_id: str,
        ts_ms: int,
        method: str,
        status: int,
        path: str,
        query: str,
        ip: str,
        raw_agent: str,
        referer: str,
        edge_location: str,
        country: str,
        asn: str,
        nbytes: int,
        time_taken: float,
        pixel: bool,
        prefetch: bool = False,
    ) -> Hit:
        """All arguments are already ``-``-stripped except ``raw_agent`` (still encoded);
        ``prefetch``: a prefetch header was logged (``cs-headers``)."""
        if pixel and query:
            if self._escaped and "%" in query:
                query = unquote(query)
            sid, cid, cat, sig, legacy = pixel_query_values(query, self._legacy)
            if legacy or sig is None:
                signature = "missing"
            else:
                signature = self._signer.verify(sid or "", cid or "", cat, sig)
            if signature == "missing" and self._require:
                # DESIGN §2 require signature: stored as ``invalid``, the value every view and
                # ``Hit.is_open`` already read as "never an open, counted under invalid_hits".
                signature = "invalid"
        else:
            sid = cid = None
            cat = ""
            signature = "missing"
        info = self._agent(raw_agent)
        machine, proxy, certainty, rules_version, signals = self._tag(
            info, method, ip, referer, asn, prefetch
        )
        hit: Hit = new_hit(
            request_id,
            ts_ms,
            self.source,
            sid,
            cid,
            cat,
            signature,
            method,
            status,
            path,
            edge_location,
            self._ip(ip),
            country,
            info.user_agent,
            info.client,
            info.device,
            machine,
            referer,
            nbytes,
            time_taken,
            proxy,
            certainty,
            rules_version,
            signals,
        )
        return hit
