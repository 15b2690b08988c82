"""``opens data update``: fetch every published network list into the data dir, with its version
and date, and say how old each list in use is (``/metrics``, ``opens stack status``).

Sources, each converted to the classifier's formats (``processor.core.networks``; Apple's CSV is
kept as Apple writes it):

=================================  ============================================================
``apple-egress``                   Apple's iCloud Private Relay egress CSV (MPP's proxy)
``google-special-crawlers``        Google's special-crawler ranges JSON (``prefixes``)
``google-user-triggered-fetchers`` Google's user-triggered fetchers JSON
``microsoft-eop``                  Microsoft 365 endpoint service JSON: endpoint sets 9 and 10
                                   (Exchange Online Protection), never the rest of Microsoft
``gateways``                       a text list in the classifier's format, from
                                   ``OPENS_GATEWAY_LIST_URL`` (no vendor publishes a feed)
=================================  ============================================================

A list is written only when its download parsed into at least one entry (atomically, beside a
``lists.json`` manifest of source, version, fetched time and entry count); a failure leaves the
previous copy (or the shipped snapshot) in use and is reported, never fatal to the others.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from processor.core.data import APPLE_EGRESS_FILENAME, APPLE_EGRESS_SEED_DATE, APPLE_EGRESS_URL
from processor.core.egress import parse_egress_csv
from processor.core.networks import network_list_path, parse_network_list, read_list_info

__all__ = [
    "DEFAULT_SOURCES",
    "ListResult",
    "http_fetch",
    "list_ages",
    "update_lists",
]

MANIFEST = "lists.json"
GOOGLE_BASE = "https://developers.google.com/static/crawling/ipranges/"
MICROSOFT_EOP_URL = "https://endpoints.office.com/endpoints/worldwide"
EOP_ENDPOINT_SETS = frozenset({9, 10})

DEFAULT_SOURCES: dict[str, str] = {
    "apple-egress": APPLE_EGRESS_URL,
    "google-special-crawlers": GOOGLE_BASE + "special-crawlers.json",
    "google-user-triggered-fetchers": GOOGLE_BASE + "user-triggered-fetchers.json",
    "microsoft-eop": MICROSOFT_EOP_URL,
    "gateways": "",
}


class Fetch(Protocol):
    def __call__(self, url: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ListResult:
    name: str
    ok: bool
    entries: int = 0
    version: str = ""
    detail: str = ""


class ListError(ValueError):
    """A download that does not parse into the list it should be."""


def _header(name: str, url: str, version: str, fetched: str, licence: str) -> str:
    return (
        f"# list: {name}\n# source: {url}\n# version: {version}\n# date: {fetched[:10]}\n"
        f"# licence: {licence}\n# fetched: {fetched}\n"
    )


def _google(name: str, url: str, text: str, fetched: str) -> tuple[str, int, str]:
    doc = json.loads(text)
    rows = [p.get("ipv4Prefix") or p.get("ipv6Prefix") for p in doc.get("prefixes", [])]
    rows = [r for r in rows if isinstance(r, str) and r]
    version = str(doc.get("creationTime") or doc.get("syncToken") or fetched)
    licence = "Google's published IP range file (Google Search Central content, CC BY 4.0)"
    body = _header(name, url, version, fetched, licence) + "\n".join(rows) + "\n"
    return body, len(parse_network_list(rows).prefixes), version


def _microsoft(name: str, url: str, text: str, fetched: str) -> tuple[str, int, str]:
    doc = json.loads(text)
    if not isinstance(doc, list):
        msg = "not a list of endpoint sets"
        raise ListError(msg)
    rows: list[str] = []
    for endpoint in doc:
        if isinstance(endpoint, dict) and endpoint.get("id") in EOP_ENDPOINT_SETS:
            rows.extend(ip for ip in endpoint.get("ips", []) if isinstance(ip, str))
    licence = "Microsoft's published network configuration data (facts)"
    body = _header(name, url, fetched[:10], fetched, licence) + "\n".join(sorted(set(rows)))
    return body + "\n", len(parse_network_list(rows).prefixes), fetched[:10]


def _text_list(name: str, url: str, text: str, fetched: str) -> tuple[str, int, str]:
    parsed = parse_network_list(text.splitlines())
    version = parsed.header.get("version") or fetched[:10]
    licence = parsed.header.get("licence", "as published at the source")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    body = _header(name, url, version, fetched, licence) + "\n".join(lines) + "\n"
    return body, len(parsed.prefixes) + len(parsed.asns), version


_CONVERT: dict[str, Callable[[str, str, str, str], tuple[str, int, str]]] = {
    "google-special-crawlers": _google,
    "google-user-triggered-fetchers": _google,
    "microsoft-eop": _microsoft,
    "gateways": _text_list,
}


def _atomic_write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


def _one(name: str, url: str, fetch: Fetch, data_dir: Path, fetched: str) -> ListResult:
    if name == "microsoft-eop" and "clientrequestid" not in url:
        url += ("&" if "?" in url else "?") + f"clientrequestid={uuid.uuid4()}"
    text = fetch(url)
    if name == "apple-egress":
        entries, rejected = parse_egress_csv(text.splitlines())
        if not entries:
            msg = f"no IP ranges ({rejected} unreadable lines)"
            raise ListError(msg)
        _atomic_write(data_dir / APPLE_EGRESS_FILENAME, text)
        return ListResult(name, True, len(entries), fetched[:10])
    body, count, version = _CONVERT[name](name, url, text, fetched)
    if not count:
        msg = "no entries"
        raise ListError(msg)
    _atomic_write(data_dir / "networks" / f"{name}.txt", body)
    return ListResult(name, True, count, version)


def update_lists(
    data_dir: Path,
    fetch: Fetch,
    sources: Mapping[str, str] = DEFAULT_SOURCES,
    *,
    now: datetime | None = None,
) -> list[ListResult]:
    """Fetch every list that has a URL; one result per list, failures included."""
    fetched = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = _read_manifest(data_dir)
    results: list[ListResult] = []
    for name, url in sources.items():
        if not url:
            results.append(ListResult(name, False, detail="no source configured: snapshot kept"))
            continue
        try:
            result = _one(name, url, fetch, data_dir, fetched)
        except Exception as exc:
            results.append(ListResult(name, False, detail=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        manifest[name] = {
            "source": url,
            "version": result.version,
            "fetched_at": fetched,
            "entries": result.entries,
        }
        results.append(result)
    _atomic_write(data_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return results


def _read_manifest(data_dir: Path) -> dict[str, Any]:
    try:
        found = json.loads((data_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_ages(data_dir: Path | None, now: datetime | None = None) -> dict[str, tuple[float, str]]:
    """``{list: (age in seconds, "downloaded"|"snapshot")}`` of the copies the classifier uses:
    a download's fetch time, else the shipped snapshot's date."""
    now = now or datetime.now(UTC)
    manifest = _read_manifest(data_dir) if data_dir is not None else {}
    out: dict[str, tuple[float, str]] = {}
    for name in DEFAULT_SOURCES:
        entry = manifest.get(name)
        if name == "apple-egress":
            downloaded = data_dir is not None and (data_dir / APPLE_EGRESS_FILENAME).is_file()
            snapshot_date = APPLE_EGRESS_SEED_DATE
        else:
            path = network_list_path(name, data_dir)
            downloaded = data_dir is not None and path.is_relative_to(data_dir)
            snapshot_date = read_list_info(name, path).date if path.is_file() else ""
        when = _parse_time(str(entry["fetched_at"])) if downloaded and entry else None
        if when is None:
            when = _parse_time(snapshot_date + "T00:00:00Z") if snapshot_date else None
        if when is not None:
            kind = "downloaded" if downloaded else "snapshot"
            out[name] = (max(0.0, (now - when).total_seconds()), kind)
    return out


def http_fetch(timeout: float) -> Fetch:
    """A ``Fetch`` over HTTPS (httpx), following redirects, failing on an HTTP error."""
    import httpx

    def fetch(url: str) -> str:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
        return response.text

    return fetch


def configured_sources(gateway_list_url: str) -> dict[str, str]:
    sources = dict(DEFAULT_SOURCES)
    if gateway_list_url:
        sources["gateways"] = gateway_list_url
    return sources
