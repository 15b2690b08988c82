"""Signed pixel URLs (DESIGN §3): build, verify, and the snippets a mailer pastes.

``sig`` (v1) = URL-safe base64 without padding of the first 16 bytes of
HMAC-SHA256(secret, ``v1\\n{sid}\\n{cid}\\n{cat}``). The first secret signs, any verifies (key
rotation). With no secret configured every pixel is ``missing``. Legacy pixels of the original
Ruby mailer (``?subscriber=..&category=..``) carry no signature and are accepted as unsigned.

v1 is ambiguous when a value holds its separator (``a\\nb``,``c`` signs like ``a``,``b\\nc``),
so v1 refuses to sign such values and a v1 ``sig`` over them verifies ``invalid``. v2 encodes
lengths and is unambiguous for any value: ``sig`` = ``2.`` + the same base64 of
HMAC-SHA256(secret, ``v2\\n{len(sid)}:{sid}\\n{len(cid)}:{cid}\\n{len(cat)}:{cat}``), lengths in
UTF-8 bytes. Both are accepted; ``.`` is not base64url, so a v2 ``sig`` is never a v1 one.
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
    "SCHEMES",
    "AmbiguousValueError",
    "PixelParams",
    "Signer",
    "parse_pixel_query",
    "pixel_base",
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


Scheme = Literal["v1", "v2"]
SCHEMES: tuple[Scheme, ...] = ("v1", "v2")
_V2_PREFIX = "2."


class AmbiguousValueError(ValueError):
    """A value v1 cannot sign unambiguously (it holds a newline, v1's separator)."""


def _v1_message(sid: str, cid: str, cat: str) -> bytes:
    return f"v1\n{sid}\n{cid}\n{cat}".encode()


def _v2_message(sid: str, cid: str, cat: str) -> bytes:
    parts = [b"v2"]
    for value in (sid, cid, cat):
        data = value.encode()
        parts.append(b"%d:%s" % (len(data), data))
    return b"\n".join(parts)


def _has_separator(sid: str, cid: str, cat: str) -> bool:
    return "\n" in sid or "\n" in cid or "\n" in cat


def sign(secret: bytes, sid: str, cid: str, cat: str = "", *, scheme: Scheme = "v1") -> str:
    """The ``sig`` value for one pixel; v1 raises ``AmbiguousValueError`` on a newline."""
    if scheme == "v2":
        digest = hmac.digest(secret, _v2_message(sid, cid, cat), "sha256")
        return _V2_PREFIX + base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
    if _has_separator(sid, cid, cat):
        msg = "a value contains a newline, which v1 cannot sign unambiguously: use scheme v2"
        raise AmbiguousValueError(msg)
    digest = hmac.digest(secret, _v1_message(sid, cid, cat), "sha256")
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
        if not sig.isascii():
            return "invalid"
        if len(sig) == 22:
            if _has_separator(sid, cid, cat):
                return "invalid"  # v1 over a separator: another triple signs the same
            msg = f"v1\n{sid}\n{cid}\n{cat}".encode()
        elif len(sig) == 24 and sig.startswith(_V2_PREFIX):
            msg, sig = _v2_message(sid, cid, cat), sig[2:]
        else:
            return "invalid"
        given = sig.encode("ascii")
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
    scheme: Scheme = "v1",
) -> str:
    """``{base_url}/o.gif?sid=..&cid=..&cat=..&sig=..``; values percent-encoded UTF-8.

    Without a secret the URL has no ``sig`` and verifies as ``missing``.
    """
    url = (
        f"{pixel_base(base_url, pixel_path)}?sid={quote(sid, safe='')}"
        f"&cid={quote(cid, safe='')}&cat={quote(cat, safe='')}"
    )
    if secret:
        url += f"&sig={sign(secret, sid, cid, cat, scheme=scheme)}"
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

# Outside values (cid, cat, base URL) reach a snippet only in forms that cannot open or close a
# template tag: percent-encoded (no "{", "#", "<", ">"), or as escaped string literals. The
# subscriber expression is the mailer author's own template code and is pasted as given.
_ERB = """\
<%# Open-tracking pixel (cloudfront-opens). Campaign {cid_note}, category {cat_note}.
    The mailer needs OPENS_PIXEL_SECRETS in its environment (the first secret signs). %>
<% opens_sid = ({sid_expr}).to_s
{ruby_check}   opens_key = ENV.fetch("OPENS_PIXEL_SECRETS").split(",").first.strip
   opens_mac = OpenSSL::HMAC.digest("SHA256", opens_key,
                                    {ruby_message})
   opens_sig = {ruby_prefix}Base64.urlsafe_encode64(opens_mac[0, 16], padding: false) %>
<img src="{base}?sid=<%= ERB::Util.url_encode(opens_sid) %>&amp;cid={cid_q}&amp;cat={cat_q}\
&amp;sig=<%= opens_sig %>" width="1" height="1" alt="" \
style="display:block;border:0;width:1px;height:1px">
"""

_RUBY_V1_CHECK = (
    '   raise ArgumentError, "newline in subscriber id: use opens pixel-url --scheme v2" '
    'if opens_sid.include?("\\n")\n'
)

_JINJA = """\
{{# Open-tracking pixel (cloudfront-opens). Campaign {cid_note}, category {cat_note}.
   Register the signing filter once where the Jinja environment is built:
     import base64, hashlib, hmac, os
     def opens_sig(sid, cid, cat=""):
         key = os.environ["OPENS_PIXEL_SECRETS"].split(",")[0].strip().encode()
{py_body}
     env.filters["opens_sig"] = opens_sig
#}}
<img src="{base}?sid={{{{ ({sid_expr}) | string | urlencode | replace("/", "%2F") }}}}\
&amp;cid={cid_q}&amp;cat={cat_q}\
&amp;sig={{{{ ({sid_expr}) | string | opens_sig({cid_lit}, {cat_lit}) }}}}" width="1" height="1" \
alt="" style="display:block;border:0;width:1px;height:1px">
"""

_PY_V1 = """\
         if "\\n" in sid + cid + cat:
             raise ValueError("newline in a value: use opens pixel-url --scheme v2")
         msg = f"v1\\n{sid}\\n{cid}\\n{cat}".encode()
         mac = hmac.digest(key, msg, "sha256")[:16]
         return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()"""

_PY_V2 = """\
         vals = [v.encode() for v in (sid, cid, cat)]
         msg = b"\\n".join([b"v2"] + [b"%d:%s" % (len(v), v) for v in vals])
         mac = hmac.digest(key, msg, "sha256")[:16]
         return "2." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()"""


def _escape_code(ch: str, short: str) -> str:
    code = ord(ch)
    if short == "ruby":
        return f"\\u{{{code:x}}}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _ruby_literal_body(value: str) -> str:
    """Text safe inside a Ruby double-quoted string inside an ERB tag: no ``%>``/``<%`` (ERB
    ends a tag there even inside a Ruby string), no interpolation, no raw control character."""
    out = []
    for ch in value:
        if ch in '\\"#':
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable() and ch not in "%<>":
            out.append(ch)
        else:
            out.append(_escape_code(ch, "ruby"))
    return "".join(out)


def _jinja_literal(value: str) -> str:
    """A Jinja string literal for ``value``: letters, digits and a few marks as they are, the
    rest as ``\\x``/``\\u`` escapes (Jinja decodes them like Python), so no quote, brace or
    ``%`` can end the literal or the expression."""
    keep = "-_. "
    body = "".join(
        ch if (ch.isascii() and ch.isalnum()) or ch in keep else _escape_code(ch, "py")
        for ch in value
    )
    return f"'{body}'"


def _note(value: str) -> str:
    # For the snippet's comment: readable, and unable to close it ("#}", "%>").
    return quote(value, safe=" ")


def pixel_base(base_url: str, pixel_path: str = "/o.gif") -> str:
    """``{base_url}{pixel_path}`` as it appears in a pixel URL: characters a URL cannot hold
    raw (spaces, quotes, braces, ``<``/``>``, non-ASCII …) percent-encoded; existing escapes
    and URL punctuation kept. The same for ``pixel_url`` and both snippets."""
    return quote(f"{base_url.rstrip('/')}{pixel_path}", safe=":/?&=;@!$'()*+,~%[]")


def snippet(
    kind: TemplateKind,
    base_url: str,
    cid: str,
    cat: str = "",
    *,
    sid_expr: str | None = None,
    pixel_path: str = "/o.gif",
    scheme: Scheme = "v1",
) -> str:
    """The ``<img>`` tag a mailer pastes into an ERB or Jinja template.

    ``cid``/``cat`` are fixed for the mailing; ``sid_expr`` is the template expression that
    yields the subscriber id (``subscriber.id`` by default). The signature is computed in the
    template with the same HMAC as ``sign``; rendered, the tag's ``src`` is ``pixel_url``'s
    URL. v1 refuses (here and in the template) values holding a newline.
    """
    if scheme == "v1" and _has_separator("", cid, cat):
        msg = "a value contains a newline, which v1 cannot sign unambiguously: use scheme v2"
        raise AmbiguousValueError(msg)
    base = pixel_base(base_url, pixel_path).replace("&", "&amp;")
    cid_q, cat_q = quote(cid, safe=""), quote(cat, safe="")
    if kind == "erb":
        cid_r, cat_r = _ruby_literal_body(cid), _ruby_literal_body(cat)
        if scheme == "v1":
            message = f'"v1\\n#{{opens_sid}}\\n{cid_r}\\n{cat_r}"'
        else:
            n_cid, n_cat = len(cid.encode()), len(cat.encode())
            message = (
                f'"v2\\n#{{opens_sid.bytesize}}:#{{opens_sid}}\\n{n_cid}:{cid_r}\\n{n_cat}:{cat_r}"'
            )
        return _ERB.format(
            cid_note=_note(cid),
            cat_note=_note(cat),
            sid_expr=sid_expr or "@subscriber.id",
            ruby_check=_RUBY_V1_CHECK if scheme == "v1" else "",
            ruby_message=message,
            ruby_prefix='"2." + ' if scheme == "v2" else "",
            base=base,
            cid_q=cid_q,
            cat_q=cat_q,
        )
    return _JINJA.format(
        cid_note=_note(cid),
        cat_note=_note(cat),
        py_body=_PY_V1 if scheme == "v1" else _PY_V2,
        sid_expr=sid_expr or "subscriber.id",
        cid_lit=_jinja_literal(cid),
        cat_lit=_jinja_literal(cat),
        base=base,
        cid_q=cid_q,
        cat_q=cat_q,
    )
