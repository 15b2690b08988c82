"""Pixel signatures (issue #14.6): v1 and v2, the newline ambiguity, require_signature, and
snippets that render to exactly the URL whatever the campaign id holds."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core import native
from processor.core.classify import Classifier
from processor.core.context import DecodeContext
from processor.core.fields import DEFAULT_REALTIME_FIELDS
from processor.core.hit import Hit
from processor.core.pixel import (
    AmbiguousValueError,
    Scheme,
    Signer,
    _v2_message,
    pixel_query_values,
    pixel_url,
    sign,
    snippet,
)
from processor.core.realtime import RealtimeDecoder
from processor.core.s3access import S3AccessParser
from processor.core.standard import StandardParser
from processor.settings import load_settings
from tests.core.conftest import SECRET
from tests.core.render import Req, raw_v1_sig, realtime_record, s3_line, standard_line

pytestmark = pytest.mark.unit

CLASSIFIER = Classifier()
BASE = "https://px.example.com"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text a pixel can carry (UTF-8: no lone surrogates), with separators and template syntax.
_piece = st.sampled_from(["\n", "\r\n", "%", "&", "=", "#", "{{", "}}", "{#", "#}", "{%", "%}"])
_piece |= st.sampled_from(["<%", "%>", "<%=", '"', "'", "\\", "#{x}", "/", "+", " ", "é", "👍"])
values = st.lists(
    st.one_of(_piece, st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)))),
    max_size=5,
).map("".join)
nonempty = values.filter(bool)


def _decoded(url: str) -> str:
    sid, cid, cat, sig, legacy = pixel_query_values(urlsplit(url).query)
    assert not legacy
    return Signer((SECRET,)).verify(sid or "", cid or "", cat, sig)


def test_v1_is_still_design_section_3() -> None:
    url = pixel_url(BASE, "sub-1", "spring", "news", secret=SECRET)
    sig = raw_v1_sig(SECRET, "sub-1", "spring", "news")
    assert url == f"{BASE}/o.gif?sid=sub-1&cid=spring&cat=news&sig={sig}"
    assert len(sig) == 22


@SETTINGS
@given(nonempty, nonempty, values, st.sampled_from(["v1", "v2"]))
def test_sign_url_decode_is_valid(sid: str, cid: str, cat: str, scheme: Scheme) -> None:
    if scheme == "v1" and "\n" in sid + cid + cat:
        with pytest.raises(AmbiguousValueError):
            pixel_url(BASE, sid, cid, cat, secret=SECRET, scheme="v1")
        return
    url = pixel_url(BASE, sid, cid, cat, secret=SECRET, scheme=scheme)
    assert _decoded(url) == "valid"


@SETTINGS
@given(nonempty, nonempty, values, st.sampled_from([0, 1, 2]), nonempty)
def test_any_single_field_change_is_invalid(
    sid: str, cid: str, cat: str, which: int, other: str
) -> None:
    triple = [sid, cid, cat]
    if triple[which] == other:
        return
    sig = sign(SECRET, sid, cid, cat, scheme="v2")
    triple[which] = other
    assert Signer((SECRET,)).verify(*triple, sig) == "invalid"
    if "\n" not in sid + cid + cat:
        v1 = sign(SECRET, sid, cid, cat)
        assert Signer((SECRET,)).verify(*triple, v1) == "invalid"


@SETTINGS
@given(st.tuples(values, values, values), st.tuples(values, values, values))
def test_v2_messages_never_collide(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    assert (_v2_message(*a) == _v2_message(*b)) == (a == b)


def test_separator_bearing_values() -> None:
    signer = Signer((SECRET,))
    # v1: "a\nb","c" and "a","b\nc" sign the same message, so neither may verify.
    forged = raw_v1_sig(SECRET, "a", "b\nc", "")
    assert signer.verify("a\nb", "c", "", forged) == "invalid"
    assert signer.verify("a", "b\nc", "", forged) == "invalid"
    with pytest.raises(AmbiguousValueError):
        sign(SECRET, "a\nb", "c")
    # v2: distinct, and each valid for its own values only.
    one, two = sign(SECRET, "a\nb", "c", scheme="v2"), sign(SECRET, "a", "b\nc", scheme="v2")
    assert one != two and one.startswith("2.") and len(one) == 24
    assert signer.verify("a\nb", "c", "", one) == "valid"
    assert signer.verify("a", "b\nc", "", one) == "invalid"
    assert signer.verify("a", "b\nc", "", two) == "valid"
    assert Signer(()).verify("a", "b", "", one) == "missing"
    for bad in ("2." + "A" * 21, "3." + one[2:], "2" + one[2:] + "=", "2.é" + one[4:]):
        assert signer.verify("a\nb", "c", "", bad) == "invalid"


# -- require_signature, on every decoder ----------------------------------------------------

_REQ = {
    "unsigned": Req(request_id="u-1", ts_ms=1_700_000_000_000, sid="s", cid="c", cat="k"),
    "legacy": Req(request_id="l-1", ts_ms=1_700_000_000_000, sid="s", cid="c", cat="", legacy=True),
    "v1": Req(request_id="v-1", ts_ms=1_700_000_000_000, sid="s", cid="c", cat="k", secret=SECRET),
    "v2": Req(
        request_id="w-1",
        ts_ms=1_700_000_000_000,
        sid="s\n",
        cid="c",
        cat="k",
        secret=SECRET,
        scheme="v2",
    ),
    "v1-newline": Req(
        request_id="n-1", ts_ms=1_700_000_000_000, sid="s\n", cid="c", cat="k", secret=SECRET
    ),
    "forged": Req(
        request_id="f-1", ts_ms=1_700_000_000_000, sid="s", cid="c", cat="k", secret=b"other"
    ),
}
_WANT = {"unsigned": "missing", "legacy": "missing", "v1": "valid", "v2": "valid"}
_WANT |= {"v1-newline": "invalid", "forged": "invalid"}


def _decoders(ctx: DecodeContext) -> dict[str, Callable[[Req], object]]:
    return {
        "realtime": lambda r: RealtimeDecoder(ctx=ctx, classifier=CLASSIFIER).decode(
            realtime_record(r, DEFAULT_REALTIME_FIELDS)
        ),
        "realtime-native": lambda r: native.realtime_decoder(ctx=ctx, classifier=CLASSIFIER).decode(
            realtime_record(r, DEFAULT_REALTIME_FIELDS)
        ),
        "standard": lambda r: StandardParser(ctx, classifier=CLASSIFIER).parse_line(
            standard_line(r)
        ),
        "standard-native": lambda r: native.standard_parser(ctx, classifier=CLASSIFIER).parse_many(
            [standard_line(r)]
        )[0],
        "s3": lambda r: S3AccessParser(ctx, classifier=CLASSIFIER).parse_line(s3_line(r)),
    }


@pytest.mark.parametrize("require", [False, True])
@pytest.mark.parametrize("kind", sorted(_REQ))
@pytest.mark.parametrize("path", sorted(_decoders(DecodeContext())))
def test_signature_on_every_path(require: bool, kind: str, path: str) -> None:
    ctx = DecodeContext(secrets=(SECRET,), require_signature=require)
    hit = _decoders(ctx)[path](_REQ[kind])
    assert isinstance(hit, Hit), hit
    want = _WANT[kind]
    if require and want == "missing":
        want = "invalid"  # counted under invalid_hits, never an open (DESIGN §2)
    assert hit.signature == want
    assert hit.is_open == (want != "invalid")


def test_require_signature_setting_reaches_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENS_REQUIRE_SIGNATURE", "true")
    assert load_settings().decode_context().require_signature
    monkeypatch.setenv("OPENS_REQUIRE_SIGNATURE", "false")
    assert not load_settings().decode_context().require_signature


# -- snippets ----------------------------------------------------------------------------


def _jinja_render(text: str, sid: str, autoescape: bool) -> str:
    import jinja2

    namespace: dict[str, object] = {}
    code = "\n".join(
        line[5:] for line in text.splitlines() if line.startswith("     ") and "env." not in line
    )
    with mock.patch.dict(os.environ, {"OPENS_PIXEL_SECRETS": SECRET.decode()}):
        exec(code, namespace)  # noqa: S102 - the snippet's own instructions
    env = jinja2.Environment(autoescape=autoescape)  # noqa: S701 - both ways are tested
    env.filters["opens_sig"] = namespace["opens_sig"]
    with mock.patch.dict(os.environ, {"OPENS_PIXEL_SECRETS": SECRET.decode()}):
        page = env.from_string(text).render(subscriber={"id": sid})
    return html.unescape(page.split('src="')[1].split('"')[0])


@SETTINGS
@given(nonempty, values, values, st.sampled_from(["v1", "v2"]), st.booleans())
def test_jinja_snippet_renders_exactly_the_url(
    sid: str, cid: str, cat: str, scheme: Scheme, autoescape: bool
) -> None:
    if scheme == "v1" and "\n" in cid + cat:
        with pytest.raises(AmbiguousValueError):
            snippet("jinja", BASE, cid, cat, scheme="v1")
        return
    text = snippet("jinja", BASE, cid, cat, scheme=scheme)
    if scheme == "v1" and "\n" in sid:
        with pytest.raises(ValueError, match="newline"):
            _jinja_render(text, sid, autoescape)
        return
    want = pixel_url(BASE, sid, cid, cat, secret=SECRET, scheme=scheme)
    assert _jinja_render(text, sid, autoescape) == want


def test_jinja_injection_example_renders_literally() -> None:
    cid = "x #}{{ 7*7 }}{# "
    text = snippet("jinja", BASE, cid, "{% raw %}")
    assert "49" not in _jinja_render(text, "s", True)
    assert _jinja_render(text, "s", True) == pixel_url(BASE, "s", cid, "{% raw %}", secret=SECRET)


_RUBY_TOKEN = re.compile(r'\\u\{([0-9a-f]+)\}|\\(["\\#n])|(#\{|")|(.)', re.S)
_INTERP, _QUOTE = "\x00interp\x00", "\x00quote\x00"


def _ruby_value(body: str) -> str:
    """A Ruby double-quoted string body as Ruby reads it; interpolation and an unescaped quote
    marked, so an injection shows."""
    out = []
    for m in _RUBY_TOKEN.finditer(body):
        code, escaped, special, plain = m.groups()
        if code:
            out.append(chr(int(code, 16)))
        elif escaped:
            out.append("\n" if escaped == "n" else escaped)
        elif special:
            out.append(_INTERP if special == "#{" else _QUOTE)
        else:
            out.append(plain)
    return "".join(out)


@SETTINGS
@given(values, values, st.sampled_from(["v1", "v2"]))
def test_erb_snippet_cannot_be_broken_out_of(cid: str, cat: str, scheme: Scheme) -> None:
    if scheme == "v1" and "\n" in cid + cat:
        return
    text = snippet("erb", BASE, cid, cat, scheme=scheme)
    plain = snippet("erb", BASE, "c", "k", scheme=scheme)
    # The snippet's own tags only: no value opens or closes one.
    assert (text.count("<%"), text.count("%>")) == (plain.count("<%"), plain.count("%>"))
    literal = text.split("opens_key,\n")[1].split('")\n   opens_sig')[0].lstrip()[1:]
    n = f"{len(cid.encode())}:", f"{len(cat.encode())}:"
    if scheme == "v1":
        want = f"v1\n{_INTERP}opens_sid}}\n{cid}\n{cat}"
    else:
        want = f"v2\n{_INTERP}opens_sid.bytesize}}:{_INTERP}opens_sid}}\n{n[0]}{cid}\n{n[1]}{cat}"
    assert _ruby_value(literal) == want
    src = text.split('<img src="')[1].split('"')[0]
    assert "<" not in src.split("<%=")[0]


# -- the command line ----------------------------------------------------------------------


def test_pixel_url_refuses_newline_for_v1_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OPENS_PIXEL_SECRETS": "k", "OPENS_DATA_DIR": str(tmp_path)}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    cmd = [sys.executable, "-c", "from processor.cli.main import run; run()", "pixel-url"]
    args = ["--sid", "a\nb", "--cid", "c", "--base-url", BASE]
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "newline" in done.stderr and "v2" in done.stderr
    done = subprocess.run(
        [*cmd, *args, "--scheme", "v2"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert Signer((b"k",)).verify("a\nb", "c", "", done.stdout.split("sig=")[1].strip()) == "valid"
