"""Pixel URLs (DESIGN §3): signing, rotation, forged and altered signatures, legacy pixels."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from processor.core.pixel import (
    PIXEL_GIF,
    Signer,
    parse_pixel_query,
    pixel_url,
    sign,
    snippet,
    verify,
)
from tests.core.conftest import OLD_SECRET, SECRET

pytestmark = pytest.mark.unit


def test_signature_is_the_documented_hmac() -> None:
    digest = hmac.new(SECRET, b"v1\nsub-1\nspring\nnews", hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert sign(SECRET, "sub-1", "spring", "news") == expected
    assert len(expected) == 22


def test_url_format_and_round_trip() -> None:
    url = pixel_url("https://px.example.com/", "a b&c", "spring-2026", "", secret=SECRET)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "px.example.com", "/o.gif")
    assert parts.query.startswith("sid=a%20b%26c&cid=spring-2026&cat=&sig=")
    q = parse_qs(parts.query, keep_blank_values=True)
    assert verify((SECRET,), q["sid"][0], q["cid"][0], q["cat"][0], q["sig"][0]) == "valid"


@pytest.mark.parametrize(
    ("secrets", "sid", "sig_from", "expected"),
    [
        ((SECRET,), "sub-1", SECRET, "valid"),
        ((SECRET, OLD_SECRET), "sub-1", OLD_SECRET, "valid"),  # rotation: any secret verifies
        ((SECRET,), "sub-1", OLD_SECRET, "invalid"),  # retired key
        ((SECRET,), "sub-2", SECRET, "invalid"),  # altered sid
        ((), "sub-1", SECRET, "missing"),  # nothing configured: every pixel is missing
    ],
)
def test_verification(secrets: tuple[bytes, ...], sid: str, sig_from: bytes, expected: str) -> None:
    sig = sign(sig_from, "sub-1", "spring", "news")
    assert Signer(secrets).verify(sid, "spring", "news", sig) == expected


@pytest.mark.parametrize(
    "forged",
    ["", "AAAAAAAAAAAAAAAAAAAAAA", "not-base64!", "é" * 22, "A" * 23, "A" * 21],
)
def test_forged_signatures(forged: str) -> None:
    result = verify((SECRET,), "sub-1", "spring", "news", forged)
    assert result == ("missing" if forged == "" else "invalid")


def test_every_single_character_change_is_invalid() -> None:
    sig = sign(SECRET, "sub-1", "spring", "news")
    signer = Signer((SECRET,))
    for i in range(len(sig)):
        for ch in "A_-z0":
            altered = sig[:i] + ch + sig[i + 1 :]
            if altered != sig:
                assert signer.verify("sub-1", "spring", "news", altered) == "invalid"
    assert signer.verify("sub-1", "spring", "news2", sig) == "invalid"
    assert signer.verify("sub-1", "spring2", "news", sig) == "invalid"


def test_long_secrets_are_hashed_like_hmac() -> None:
    secret = b"k" * 100
    assert Signer((secret,)).verify("s", "c", "", sign(secret, "s", "c", "")) == "valid"


def test_query_parsing() -> None:
    p = parse_pixel_query("sid=a%26b&cid=c+d&cat=&sig=xyz&sid=second")
    assert (p.sid, p.cid, p.cat, p.sig, p.legacy) == ("a&b", "c d", "", "xyz", False)
    legacy = parse_pixel_query("subscriber=42&category=weekly")
    assert (legacy.sid, legacy.cid, legacy.cat, legacy.sig, legacy.legacy) == (
        "42",
        "weekly",
        "weekly",
        None,
        True,
    )
    custom = parse_pixel_query("subscriber=42&category=weekly&campaign=c9", "campaign")
    assert (custom.sid, custom.cid, custom.cat) == ("42", "c9", "weekly")
    assert parse_pixel_query("e=pv&page=x").sid is None


def test_gif_is_the_43_byte_transparent_gif89a() -> None:
    assert len(PIXEL_GIF) == 43
    assert PIXEL_GIF.startswith(b"GIF89a\x01\x00\x01\x00")
    assert PIXEL_GIF.endswith(b";")


def test_jinja_snippet_renders_a_valid_signed_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import jinja2  # flask (moto[server]) brings it; a real template engine renders the snippet

    text = snippet("jinja", "https://px.example.com", "spring", "news")
    monkeypatch.setenv("OPENS_PIXEL_SECRETS", SECRET.decode() + ",other")
    # The filter the snippet's comment tells the mailer to register, exactly as printed there.
    namespace: dict[str, object] = {}
    code = "\n".join(
        line[5:] for line in text.splitlines() if line.startswith("     ") and "env." not in line
    )
    exec(code, namespace)  # noqa: S102 - the snippet's own instructions
    env = jinja2.Environment(autoescape=True)
    env.filters["opens_sig"] = namespace["opens_sig"]
    html = env.from_string(text).render(subscriber={"id": "sub 7"})
    src = html.split('src="')[1].split('"')[0].replace("&amp;", "&")
    q = parse_qs(urlsplit(src).query, keep_blank_values=True)
    assert q["sid"] == ["sub 7"]
    assert verify((SECRET,), q["sid"][0], q["cid"][0], q["cat"][0], q["sig"][0]) == "valid"


def test_erb_snippet_signs_in_ruby_with_the_same_message() -> None:
    text = snippet("erb", "https://px.example.com", 'sp"ring#1', "news", sid_expr="user.id")
    assert "OpenSSL::HMAC.digest" in text
    assert '"v1\\n#{opens_sid}\\nsp\\"ring\\#1\\nnews"' in text
    assert "ERB::Util.url_encode(opens_sid)" in text
    assert "cid=sp%22ring%231&amp;cat=news" in text
    assert "(user.id).to_s" in text
