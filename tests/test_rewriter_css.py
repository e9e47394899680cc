"""CSS fetches in markup (issue 8): a ``url(…)`` or ``@import "…"`` in a style attribute or a ``<style>``
element to a vendor the visitor has not allowed, or to a host nobody classified, goes out as a data URL that
loads nothing and carries the original for the banner; first-party and allowed hosts, and the rest of the CSS,
are left as they are. Golden pages at every chunking, with and without the native helpers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html import HoldbackRewriter, use_accelerators
from consent_gateway.thirdparty import HostCounters, ThirdParties

GOLDEN = Path(__file__).parent / "data" / "rewriter_css"
CASES = sorted(p.name.removesuffix(".src.html") for p in GOLDEN.glob("*.src.html"))
SITE = "example.org"
NOTHING = Decision(granted=frozenset({"necessary"}), site=SITE)
EVERYTHING = Decision(granted=frozenset({"necessary", "analytics", "marketing", "unclassified"}), site=SITE)
HELD = re.compile(rb"url\(data:,cg;([^;]*);([^;]*);([^)]*)\)")
#: a URL a browser would fetch from CSS: a url( token or an @import string, to another host
LIVE = re.compile(rb"""(?i:url)\(\s*["']?(?:https?:)?//([^/"')\s]+)|@import\s*["'](?:https?:)?//([^/"']+)""")


def catalog(counters: HostCounters | None = None) -> Catalog:
    third_parties = ThirdParties(mode="hold", counters=HostCounters() if counters is None else counters)
    return Catalog.builtin().with_third_parties(third_parties)


def rewrite(page: bytes, chunk_size: int | None = None, decision: Decision = NOTHING,
            counters: HostCounters | None = None) -> tuple[bytes, HoldbackRewriter]:
    rw = HoldbackRewriter(catalog(counters), decision, b"", cache=None)
    size = chunk_size or len(page)
    return b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close(), rw


@pytest.fixture(params=[True, False], ids=["native", "pure"], autouse=True)
def _accelerators(request: pytest.FixtureRequest) -> object:
    use_accelerators(request.param)
    yield
    use_accelerators(True)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 4096])
@pytest.mark.parametrize("case", CASES)
def test_golden_page_holds_back_css_fetches_the_same_at_every_chunking(case: str, chunk_size: int | None) -> None:
    source = (GOLDEN / f"{case}.src.html").read_bytes()
    out, _ = rewrite(source, chunk_size)
    assert out == (GOLDEN / f"{case}.expected.html").read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_only_first_party_and_allowed_css_urls_stay_live(case: str) -> None:
    out, _ = rewrite((GOLDEN / f"{case}.src.html").read_bytes())
    # the "title" attribute's URL is no CSS fetch; a comment's is (held all the same: tokens are read anywhere)
    css = re.sub(rb' title="[^"]*"', b"", out).replace(b"https\\3a ", b"https:")
    live = {(a or b).decode() for a, b in LIVE.findall(css)}
    assert live <= {"cdn.jsdelivr.net", "www.example.org", "static.example.org"}, live
    if case == "css_attributes":
        assert b'title="not a style (url(https://img.tracker-unknown.example/t.gif))"' in out


class _Css(HTMLParser):
    """The CSS a browser reads from a page: each style attribute's value and each <style>'s text."""

    def __init__(self, html: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.css: list[str] = []
        self._in_style = False
        self.feed(html.decode())
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.css.extend(value or "" for name, value in attrs if name == "style")
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)
            self._in_style = False


@pytest.mark.parametrize("case", CASES)
def test_each_held_url_carries_its_original_token_for_the_banner(case: str) -> None:
    source = (GOLDEN / f"{case}.src.html").read_bytes()
    out, rw = rewrite(source)
    held = HELD.findall(out)
    assert held and sum(rw.held_back.values()) == len(held)
    # what the banner puts back (static/banner/banner.js: the same substitution) is the source's CSS
    restored = [re.sub(r"url\(data:,cg;[^;]*;[^;]*;([^)]*)\)", lambda m: unquote(m.group(1)), css)
                for css in _Css(out).css]
    assert restored == _Css(source).css


def test_nothing_is_held_once_everything_is_allowed() -> None:
    for case in CASES:
        source = (GOLDEN / f"{case}.src.html").read_bytes()
        assert rewrite(source, decision=EVERYTHING)[0] == source


def test_an_unclassified_css_host_is_counted_for_the_owner() -> None:
    counters = HostCounters()
    rewrite((GOLDEN / "css_attributes.src.html").read_bytes(), counters=counters)
    assert "img.tracker-unknown.example" in [c.host for c in counters.top()]


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_long_style_element_is_rewritten_as_it_streams(chunk_size: int | None) -> None:
    rule = b".a{background:url(/own.png)}\n"
    page = (b"<html><head><style>" + rule * 5000 + b".t{background:url(//px.tracker-unknown.example/p.gif)}"
            + rule * 5000 + b"</style></head><body>x</body></html>")
    out, rw = rewrite(page, chunk_size)
    assert out.count(rule) == 10000 and rw.held_back["unclassified"] == 1
    assert b"px.tracker-unknown.example" not in HELD.sub(b"", out)


def test_a_token_longer_than_the_limit_is_left_as_it_is() -> None:
    data_url = b"url(data:image/png;base64," + b"A" * 10000 + b")"
    page = b"<html><body><style>.x{background:" + data_url + b"}</style><p style='background:" + data_url + b"'>"
    assert rewrite(page)[0] == page


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_style_element_whose_text_looks_like_a_tag_is_read_as_css(chunk_size: int | None) -> None:
    """<style>'s text is CSS to a browser (outside a <select>) even where it looks like a tracker-capable tag:
    a quoted value hiding the next "<" must not hide a url() behind it."""
    page = (b"<style/><a ping='<p STYLE='color:red;background-image:URL( \"//bat.bing.com/action/0\" )'>"
            b"</style><p>after</p>")
    out, _ = rewrite(page, chunk_size)
    assert LIVE.findall(out) == []
    assert HELD.findall(out) == [(b"marketing", b"microsoft-uet",
                                  b"URL%28%20%22%2F%2Fbat.bing.com%2Faction%2F0%22%20%29")]
    assert out.endswith(b"</style><p>after</p>")
