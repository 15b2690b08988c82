"""Signed pixel URLs (DESIGN §3): build, verify, and the snippets a mailer pastes.

``sig`` = URL-safe base64 without padding of the first 16 bytes of
HMAC-SHA256(secret, ``v1\\n{sid}\\n{cid}\\n{cat}``). The first secret signs, any verifies (key
rotation). With no secret configured every pixel is ``missing``. Legacy pixels of the original
Ruby mailer (``?subscriber=..&category=..``) carry no signature and are accepted as unsigned.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from processor.core.hit import Signature
from processor.core.text import form_value

__all__ = [
    "PIXEL_GIF",
    "PixelParams",
    "parse_pixel_query",
    "pixel_url",
    "sign",
    "snippet",
    "verify",
]

# The 43-byte transparent 1x1 GIF89a served as the pixel.
PIXEL_GIF = bytes.fromhex(
    "474946383961010001008000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

_WANTED = frozenset({"sid", "cid", "cat", "sig", "subscriber", "category"})


def _message(sid: str, cid: str, cat: str) -> bytes:
    return f"v1\n{sid}\n{cid}\n{cat}".encode()


def sign(secret: bytes, sid: str, cid: str, cat: str = "") -> str:
    """The ``sig`` value for one pixel."""
    digest = hmac.digest(secret, _message(sid, cid, cat), "sha256")
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def verify(
    secrets: tuple[bytes, ...], sid: str, cid: str, cat: str, sig: str | None
) -> Signature:
    """``valid`` if any secret produced ``sig``; ``missing`` if unsigned or no secret is set."""
    if not sig or not secrets:
        return "missing"
    try:
        given = sig.encode("ascii")
    except UnicodeEncodeError:
        return "invalid"
    msg = _message(sid, cid, cat)
    for secret in secrets:
        digest = hmac.digest(secret, msg, "sha256")
        expected = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=")
        if hmac.compare_digest(expected, given):
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


def parse_pixel_query(query: str, legacy_campaign_param: str = "category") -> PixelParams:
    """Parse an already CloudFront-decoded query as a form query; the first value of a key wins.

    Only the pixel's own keys are decoded, so long foreign queries cost little.
    """
    found: dict[str, str] = {}
    wanted = _WANTED if legacy_campaign_param in _WANTED else _WANTED | {legacy_campaign_param}
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key not in wanted:
            if "%" not in key and "+" not in key:
                continue
            key = form_value(key)
            if key not in wanted:
                continue
        if key not in found:
            found[key] = form_value(value)
    sid = found.get("sid")
    if sid is None and "subscriber" in found:
        category = found.get("category", "")
        return PixelParams(
            sid=found["subscriber"] or None,
            cid=found.get(legacy_campaign_param) or None,
            cat=category,
            sig=None,
            legacy=True,
        )
    return PixelParams(
        sid=sid or None,
        cid=found.get("cid") or None,
        cat=found.get("cat", ""),
        sig=found.get("sig") or None,
        legacy=False,
    )


TemplateKind = Literal["erb", "jinja"]

_ERB = """\
<%# Open-tracking pixel (cloudfront-opens). Campaign {cid!r}, category {cat!r}.
    The mailer needs OPENS_PIXEL_SECRETS in its environment (the first secret signs). %>
<% opens_sid = ({sid_expr}).to_s
   opens_sig = Base64.urlsafe_encode64(
     OpenSSL::HMAC.digest("SHA256", ENV.fetch("OPENS_PIXEL_SECRETS").split(",").first.strip,
                          "v1\\n#{{opens_sid}}\\n{cid_ruby}\\n{cat_ruby}")[0, 16], padding: false) %>
<img src="{base}?sid=<%= ERB::Util.url_encode(opens_sid) %>&amp;cid={cid_q}&amp;cat={cat_q}\
&amp;sig=<%= opens_sig %>" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">
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
