"""Signed pixel URLs (DESIGN §3): build, verify, and the snippets a mailer pastes.

``sig`` = URL-safe base64 without padding of the first 16 bytes of
HMAC-SHA256(secret, ``v1\\n{sid}\\n{cid}\\n{cat}``). The first secret signs, any verifies (key
rotation). With no secret configured every pixel is ``missing``. Legacy pixels of the original
Ruby mailer (``?subscriber=..&category=..``) carry no signature and are accepted as unsigned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from processor.core.hit import Signature
from processor.core.text import form_value

__all__ = [
    "PIXEL_GIF",
    "PixelParams",
    "Signer",
    "parse_pixel_query",
    "pixel_query_values",
    "pixel_url",
    "sign",
    "snippet",
    "verify",
]

# The 43-byte transparent 1x1 GIF89a served as the pixel.
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

_WANTED = frozenset({"sid", "cid", "cat", "sig", "subscriber", "category"})


def _message(sid: str, cid: str, cat: str) -> bytes:
    return f"v1\n{sid}\n{cid}\n{cat}".encode()


def sign(secret: bytes, sid: str, cid: str, cat: str = "") -> str:
    """The ``sig`` value for one pixel."""
    digest = hmac.digest(secret, _message(sid, cid, cat), "sha256")
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def verify(secrets: tuple[bytes, ...], sid: str, cid: str, cat: str, sig: str | None) -> Signature:
    """``valid`` if any secret produced ``sig``; ``missing`` if unsigned or no secret is set."""
    return Signer(secrets).verify(sid, cid, cat, sig)


_B64_URLSAFE = bytes.maketrans(b"+/", b"-_")


class Signer:
    """``verify`` for a fixed set of secrets, with each key's HMAC pads hashed once.

    HMAC-SHA256(k, m) = H((k ^ opad) || H((k ^ ipad) || m)); the two keyed prefixes are the same
    for every pixel, so their SHA-256 states are computed here and copied per check. That halves
    the cost of ``hmac.digest`` on the decoding hot path; the result is the same HMAC.
    """

    __slots__ = ("_states",)

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        states = []
        for secret in secrets:
            key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
            key = key.ljust(64, b"\0")
            inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
            outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
            states.append((inner, outer))
        self._states = tuple(states)

    def verify(self, sid: str, cid: str, cat: str, sig: str | None) -> Signature:
        if not sig or not self._states:
            return "missing"
        if len(sig) != 22 or not sig.isascii():
            return "invalid"
        given = sig.encode("ascii")
        msg = f"v1\n{sid}\n{cid}\n{cat}".encode()
        for inner, outer in self._states:
            h = inner.copy()
            h.update(msg)
            o = outer.copy()
            o.update(h.digest())
            expected = binascii.b2a_base64(o.digest()[:16], newline=False)[:22]
            if hmac.compare_digest(expected.translate(_B64_URLSAFE), given):
                return "valid"
        return "invalid"


def pixel_url(
    base_url: str,
    sid: str,
    cid: str,
    cat: str = "",
    *,
    secret: bytes | None = None,
    pixel_path: str = "/o.gif",
) -> str:
    """``{base_url}/o.gif?sid=..&cid=..&cat=..&sig=..``; values percent-encoded UTF-8.

    Without a secret the URL has no ``sig`` and verifies as ``missing``.
    """
    url = (
        f"{base_url.rstrip('/')}{pixel_path}?sid={quote(sid, safe='')}"
        f"&cid={quote(cid, safe='')}&cat={quote(cat, safe='')}"
    )
    if secret:
        url += f"&sig={sign(secret, sid, cid, cat)}"
    return url


@dataclass(frozen=True, slots=True)
class PixelParams:
    """What a pixel query says. ``legacy`` marks a ``subscriber=``/``category=`` pixel."""

    sid: str | None
    cid: str | None
    cat: str
    sig: str | None
    legacy: bool


def pixel_query_values(
    query: str, legacy_campaign_param: str = "category"
) -> tuple[str | None, str | None, str, str | None, bool]:
    """``(sid, cid, cat, sig, legacy)`` from an already CloudFront-decoded query (hot path).

    Parsed as a form query; the first value of a key wins. Only the pixel's own keys are
    decoded, so long foreign queries cost little.
    """
    if "%" not in query and "+" not in query:
        parts = query.split("&")
        if len(parts) == 4:
            # The exact layout ``pixel_url`` writes: no dict, no decoding.
            a, b, c, d = parts
            if a[:4] == "sid=" and b[:4] == "cid=" and c[:4] == "cat=" and d[:4] == "sig=":
                return a[4:] or None, b[4:] or None, c[4:], d[4:], False
    found: dict[str, str] = {}
    wanted = _WANTED if legacy_campaign_param in _WANTED else _WANTED | {legacy_campaign_param}
    if "%" not in query and "+" not in query:
        # Nothing to decode: the common case for the URLs ``pixel_url`` builds.
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key in wanted and key not in found:
                found[key] = value
    else:
        for part in query.split("&"):
            key, _, value = part.partition("=")
            key = form_value(key)
            if key in wanted and key not in found:
                found[key] = form_value(value)
    sid = found.get("sid")
    if sid is None and "subscriber" in found:
        return (
            found["subscriber"] or None,
            found.get(legacy_campaign_param) or None,
            found.get("category", ""),
            None,
            True,
        )
    return (sid or None, found.get("cid") or None, found.get("cat", ""), found.get("sig"), False)


def parse_pixel_query(query: str, legacy_campaign_param: str = "category") -> PixelParams:
    """``PixelParams`` from an already CloudFront-decoded query (see ``pixel_query_values``)."""
    sid, cid, cat, sig, legacy = pixel_query_values(query, legacy_campaign_param)
    return PixelParams(sid=sid, cid=cid, cat=cat, sig=sig or None, legacy=legacy)


TemplateKind = Literal["erb", "jinja"]

_ERB = """\
<%# Open-tracking pixel (cloudfront-opens). Campaign {cid!r}, category {cat!r}.
    The mailer needs OPENS_PIXEL_SECRETS in its environment (the first secret signs). %>
<% opens_sid = ({sid_expr}).to_s
   opens_key = ENV.fetch("OPENS_PIXEL_SECRETS").split(",").first.strip
   opens_mac = OpenSSL::HMAC.digest("SHA256", opens_key,
                                    "v1\\n#{{opens_sid}}\\n{cid_ruby}\\n{cat_ruby}")
   opens_sig = Base64.urlsafe_encode64(opens_mac[0, 16], padding: false) %>
<img src="{base}?sid=<%= ERB::Util.url_encode(opens_sid) %>&amp;cid={cid_q}&amp;cat={cat_q}\
&amp;sig=<%= opens_sig %>" width="1" height="1" alt="" \
style="display:block;border:0;width:1px;height:1px">
"""

_JINJA = """\
{{# Open-tracking pixel (cloudfront-opens). Campaign {cid!r}, category {cat!r}.
   Register the signing filter once where the Jinja environment is built:
     import base64, hashlib, hmac, os
     def opens_sig(sid, cid, cat=""):
         key = os.environ["OPENS_PIXEL_SECRETS"].split(",")[0].strip().encode()
         msg = f"v1\\n{{sid}}\\n{{cid}}\\n{{cat}}".encode()
         return base64.urlsafe_b64encode(hmac.digest(key, msg, "sha256")[:16]).rstrip(b"=").decode()
     env.filters["opens_sig"] = opens_sig
#}}
<img src="{base}?sid={{{{ ({sid_expr}) | string | urlencode }}}}&amp;cid={cid_q}&amp;cat={cat_q}\
&amp;sig={{{{ ({sid_expr}) | string | opens_sig({cid_py}, {cat_py}) }}}}" width="1" height="1" \
alt="" style="display:block;border:0;width:1px;height:1px">
"""


def _ruby_literal_body(value: str) -> str:
    """Text safe inside a Ruby double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")


def snippet(
    kind: TemplateKind,
    base_url: str,
    cid: str,
    cat: str = "",
    *,
    sid_expr: str | None = None,
    pixel_path: str = "/o.gif",
) -> str:
    """The ``<img>`` tag a mailer pastes into an ERB or Jinja template.

    ``cid``/``cat`` are fixed for the mailing; ``sid_expr`` is the template expression that
    yields the subscriber id (``subscriber.id`` by default). The signature is computed in the
    template with the same HMAC as ``sign``.
    """
    base = f"{base_url.rstrip('/')}{pixel_path}"
    cid_q, cat_q = quote(cid, safe=""), quote(cat, safe="")
    if kind == "erb":
        return _ERB.format(
            cid=cid,
            cat=cat,
            sid_expr=sid_expr or "@subscriber.id",
            cid_ruby=_ruby_literal_body(cid),
            cat_ruby=_ruby_literal_body(cat),
            base=base,
            cid_q=cid_q,
            cat_q=cat_q,
        )
    return _JINJA.format(
        cid=cid,
        cat=cat,
        sid_expr=sid_expr or "subscriber.id",
        cid_py=repr(cid),
        cat_py=repr(cat),
        base=base,
        cid_q=cid_q,
        cat_q=cat_q,
    )
