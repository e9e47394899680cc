"""The streaming holdback rewriter: golden pages at every chunking, head insertion, encodings, bail-outs,
the chunk cache and the optional native helpers."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consent_gateway import html as rewriter_module
from consent_gateway import metrics
from consent_gateway.catalog import URL_KINDS, Catalog, VendorRule
from consent_gateway.decision import Decision
from consent_gateway.html import CHUNK_CACHE, HoldbackRewriter, make_inert
from consent_gateway.html.rewriter import PRESCAN_WAIT_BYTES

GOLDEN = Path(__file__).parent / "data" / "rewriter"
CASES = sorted(p.name.removesuffix(".src.html") for p in GOLDEN.glob("*.src.html"))
HEAD = b'<script type="application/json" id="cg-config">{}</script><script src="/_consent/banner.js" defer></script>'
NOTHING = Decision(granted=frozenset({"necessary"}))
CATALOG = Catalog.builtin()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    CHUNK_CACHE.clear()
    yield
    CHUNK_CACHE.clear()
    rewriter_module.use_accelerators(True)


def rewrite(page: bytes, chunk_size: int | None = None, *, decision: Decision = NOTHING, head: bytes = HEAD,
            cached: bool = False, max_buffer_bytes: int = 65536, catalog: Catalog = CATALOG
            ) -> tuple[bytes, HoldbackRewriter]:
    rw = HoldbackRewriter(catalog, decision, head, max_buffer_bytes=max_buffer_bytes,
                          cache=CHUNK_CACHE if cached else None)
    size = chunk_size or max(1, len(page))
    out = b"".join(rw.feed(page[i : i + size]) for i in range(0, len(page), size)) + rw.close()
    return out, rw


class _LoadedUrls(HTMLParser):
    """An independent reading of a page (the standard library's parser): the URLs a browser would load
    from the elements that fetch, honouring first-duplicate-wins and script types."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.any_kind: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        first: dict[str, str] = {}
        for name, value in attrs:
            first.setdefault(name, value or "")
        before = len(self.urls)
        if tag == "script":
            kind = first.get("type", "").strip().lower()
            if kind not in ("", "module", "text/javascript", "application/javascript"):
                return
            self.urls.append(first.get("src", ""))
        elif tag in ("iframe", "img"):
            self.urls.append(first.get("src", ""))
            self.urls.extend(part.split()[0] for part in first.get("srcset", "").split(",") if part.split())
        elif tag == "link" and set(first.get("rel", "").lower().split()) & {
            "preload", "prefetch", "preconnect", "dns-prefetch", "modulepreload", "stylesheet"
        }:
            self.urls.append(first.get("href", ""))
        else:
            # the other elements that fetch: looked up as any kind of the catalog (the gateway does the same)
            if tag in ("video", "audio", "source", "track", "embed", "frame", "object", "image", "body"):
                self.urls.extend(first.get(a, "") for a in ("src", "poster", "data", "href", "xlink:href",
                                                            "background"))
                self.urls.extend(part.split()[0] for part in first.get("srcset", "").split(",") if part.split())
            elif tag == "input" and first.get("type", "").strip().lower() == "image":
                self.urls.append(first.get("src", ""))
            elif tag == "a":
                self.urls.extend(first.get("ping", "").split())
            elif tag == "meta" and first.get("http-equiv", "").strip().lower() == "refresh":
                self.urls.append(first.get("content", "").partition("=")[2].strip("'\" "))
            self.any_kind.extend(self.urls[before:])

    handle_startendtag = handle_starttag


def live_tracker_urls(html: bytes) -> list[str]:
    """Catalog tracker URLs still in an attribute the browser loads."""
    parser = _LoadedUrls()
    parser.feed(html.decode("utf-8", "replace"))
    parser.close()
    any_kind = set(parser.any_kind)
    return [u for u in parser.urls if u and any(
        CATALOG.vendor_for_url(u, k) for k in (URL_KINDS if u in any_kind else ("script", "iframe", "img"))
    )]


# -- golden pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("accelerated", [True, False], ids=["native", "pure"])
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 4096])
@pytest.mark.parametrize("case", CASES)
def test_golden_page_is_rewritten_the_same_at_every_chunking(case: str, chunk_size: int | None,
                                                             accelerated: bool) -> None:
    rewriter_module.use_accelerators(accelerated)
    source = (GOLDEN / f"{case}.src.html").read_bytes()
    expected = (GOLDEN / f"{case}.expected.html").read_bytes()
    out, _ = rewrite(source, chunk_size)
    assert out == expected


@pytest.mark.parametrize("accelerated", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_golden_page_is_the_same_from_the_chunk_cache_with_and_without_native_helpers(
    case: str, accelerated: bool
) -> None:
    rewriter_module.use_accelerators(accelerated)
    source = (GOLDEN / f"{case}.src.html").read_bytes()
    source *= 4096 // len(source) + 2  # several chunks long enough for the cache
    first, rw1 = rewrite(source, 1024, cached=True)
    hits = CHUNK_CACHE.hits
    second, rw2 = rewrite(source, 1024, cached=True, head=b"<!--another visitor-->")
    assert CHUNK_CACHE.hits > hits
    uncached, _ = rewrite(source, 1024)
    assert first == uncached
    assert second == uncached.replace(HEAD, b"<!--another visitor-->", 1)
    assert rw2.held_back == rw1.held_back


def test_golden_pages_hold_back_every_tracker() -> None:
    for case in CASES:
        if case == "raw_text":
            continue  # html.parser reads <title>, <textarea>, <xmp> and CDATA as markup; the golden file rules
        source = (GOLDEN / f"{case}.src.html").read_bytes()
        assert live_tracker_urls(rewrite(source)[0]) == [], case
    assert live_tracker_urls((GOLDEN / "head_trackers.src.html").read_bytes())  # the check itself sees them


# -- what the page looks like after ------------------------------------------------------------------------


def test_held_back_script_keeps_its_attributes_and_moves_src_and_type() -> None:
    page = (b'<head></head><script async defer nonce="n1" crossorigin="anonymous" integrity="sha384-x" '
            b'type="module" src="https://connect.facebook.net/en_US/fbevents.js" id="fb"></script>')
    out, rw = rewrite(page)
    assert (b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel" async defer '
            b'nonce="n1" crossorigin="anonymous" integrity="sha384-x" data-cg-type="module" '
            b'data-cg-src="https://connect.facebook.net/en_US/fbevents.js" id="fb"></script>') in out
    assert rw.held_back == {"meta-pixel": 1}


def test_allowed_vendors_pass_untouched() -> None:
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    everything = Decision(
        granted=frozenset({"necessary", "analytics", "session-replay", "marketing", "preferences"})
    )
    out, rw = rewrite(source, 7, decision=everything)
    assert out == source.replace(b"<head>", b"<head>" + HEAD, 1)
    assert not rw.held_back


def test_a_vendor_refused_by_name_is_held_back_though_its_category_is_granted() -> None:
    page = (b'<head></head><iframe src="https://www.youtube.com/embed/a"></iframe>'
            b'<iframe src="https://player.vimeo.com/video/1"></iframe>')
    decision = Decision(granted=frozenset({"necessary", "preferences"}), vendors_refused=frozenset({"youtube"}))
    out, rw = rewrite(page, decision=decision)
    assert b'data-cg-src="https://www.youtube.com/embed/a"' in out
    assert b'<iframe src="https://player.vimeo.com/video/1">' in out
    assert rw.held_back == {"youtube": 1}


def test_a_vendor_granted_by_name_passes_though_its_category_is_not() -> None:
    page = b'<head></head><script src="https://static.hotjar.com/c/hotjar-1.js"></script>'
    decision = Decision(granted=frozenset({"necessary"}), vendors_granted=frozenset({"hotjar"}))
    out, _ = rewrite(page, decision=decision)
    assert out == page.replace(b"<head>", b"<head>" + HEAD)


def test_inline_script_with_an_allowed_and_a_refused_vendor_is_held_back_for_the_refused_one() -> None:
    page = b"<head></head><script>gtag('js', new Date()); fbq('init', '1');</script>"
    decision = Decision(granted=frozenset({"necessary", "analytics"}))
    out, rw = rewrite(page, decision=decision)
    assert b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel">' in out
    assert rw.held_back == {"meta-pixel": 1}


# -- banner block -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (b"<!DOCTYPE html><html><head lang=en><title>t</title>", b"<!DOCTYPE html><html><head lang=en>@@<title>t"),
        (b"<!doctype html>\n<html>\n<body><p>x", b"<!doctype html>\n<html>\n@@<body><p>x"),
        (b"<!-- <head> --><script>var s = '<head>';</script><head>",
         b"<!-- <head> -->@@<script>var s = '<head>';</script><head>"),
        (b"  Hello <head>", b"  @@Hello <head>"),
        (b"", b""),
        (b"<!DOCTYPE html>", b"<!DOCTYPE html>@@"),
        (b"<html><head><head>", b"<html><head>@@<head>"),
        (b"<?xml version='1.0'?><!-- x --><HTML\nlang=fr><HEAD>",
         b"<?xml version='1.0'?><!-- x --><HTML\nlang=fr><HEAD>@@"),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_banner_block_is_inserted_once_at_the_top_of_head_or_before_the_first_content(
    page: bytes, expected: bytes, chunk_size: int | None
) -> None:
    out, _ = rewrite(page, chunk_size, head=b"@@")
    assert out.startswith(expected)
    assert out.count(b"@@") == (1 if page else 0)


def test_banner_block_appears_exactly_once() -> None:
    page = b"<html><head><title>a</title></head><body><head><p>x</p><head></body></html>" * 2
    for size in (None, 1, 5):
        out, _ = rewrite(page, size, head=b"<!--BANNER-->")
        assert out.count(b"<!--BANNER-->") == 1


# -- encodings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        "<html><head><script src='https://www.googletagmanager.com/gtm.js'></script>".encode("utf-16"),
        "<html><head><script src='https://www.googletagmanager.com/gtm.js'></script>".encode("utf-32"),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_non_ascii_compatible_documents_pass_through_untouched_and_are_counted(
    page: bytes, chunk_size: int | None
) -> None:
    out, rw = rewrite(page, chunk_size)
    assert out == page
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == 1
    assert not rw.held_back


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_nul_bytes_without_a_bom_are_read_as_bytes_like_browsers_do(chunk_size: int | None) -> None:
    # no BOM: a browser ignores the NULs and runs the tags after them; BOM-less UTF-16 is text to it
    out, rw = rewrite(b"\x00\x00<script src='https://www.googletagmanager.com/gtm.js'></script>", chunk_size)
    assert rw.held_back == {"google-tag-manager": 1} and b" src='https://" not in out
    wide = "<html><head><script src='https://www.googletagmanager.com/gtm.js'></script>".encode("utf-16-be")
    out, rw = rewrite(wide, chunk_size)
    assert not rw.held_back and out.endswith(wide)  # "<\0s" is no tag to a browser either
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == 0


@pytest.mark.parametrize(
    "page",
    [
        b'<html><head><meta charset="UTF-16"><script src="https://www.googletagmanager.com/gtm.js"></script>',
        b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-16le">'
        b'<script src="https://www.googletagmanager.com/gtm.js"></script>',
        b'<html><head><meta charset="utf-32"><script src="https://www.googletagmanager.com/gtm.js"></script>',
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_meta_naming_utf16_or_utf32_is_read_as_utf8_like_browsers_do(page: bytes, chunk_size: int | None) -> None:
    # HTML's prescan turns a <meta> UTF-16 into UTF-8 and does not know UTF-32: the trackers would run
    out, rw = rewrite(page, chunk_size)
    assert rw.held_back == {"google-tag-manager": 1}
    assert b' src="https://www.googletagmanager.com' not in out
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == 0


@pytest.mark.parametrize(
    "page",
    [
        b"<select><xmp><script src=https://www.googletagmanager.com/gtm.js></script></xmp></select>",
        b"<select><style><img src=https://bat.bing.com/action/0?ti=1></style></select>",
        b"<select><noembed><iframe src=https://www.youtube.com/embed/x></iframe></noembed></select>",
        b"<select><title><script src=https://www.googletagmanager.com/gtm.js></script></title></select>",
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_raw_text_a_select_ignores_is_read_as_markup_too(page: bytes, chunk_size: int | None) -> None:
    # In a <select> a browser ignores <xmp>, <style>, <noembed>, <title>: the tag after them runs (issue 10)
    out, rw = rewrite(page, chunk_size)
    assert sum(rw.held_back.values()) == 1
    assert b" src=https://" not in out


def test_a_tracker_tag_cut_by_the_chunking_inside_raw_text_read_both_ways_is_held_the_same() -> None:
    # <xmp> is read as text and as markup (a <select> would ignore it): a tracker tag in it is held, and a
    # chunk boundary anywhere in that tag, even right after its "<", must not let it through
    tag = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    page = b"<xmp>" + b"padding " * 300 + tag + b" more text"  # past the first KiB, read before the banner goes in
    whole, _ = rewrite(page)
    assert b' src="https://' not in whole
    start = page.index(tag)
    for cut in range(start - 2, start + 12):
        rw = HoldbackRewriter(CATALOG, NOTHING, HEAD)
        assert rw.feed(page[:cut]) + rw.feed(page[cut:]) + rw.close() == whole, cut


def test_text_in_raw_text_elements_is_left_alone() -> None:
    page = b"<title>a <b> title</title><xmp>x < y <img src=/logo.png></xmp><style>a>b{}</style><p>"
    out, rw = rewrite(page, 3)
    assert out.endswith(page) and not rw.held_back


def test_a_base_href_on_a_tracker_host_holds_the_relative_script_after_it() -> None:
    page = b'<html><head><base href="https://www.googletagmanager.com/"><script src="gtm.js"></script>'
    for chunk_size in (None, 1, 5):
        out, rw = rewrite(page, chunk_size)
        assert rw.held_back == {"google-tag-manager": 1}
        assert b'<script src="gtm.js">' not in out


def test_utf8_bom_is_kept_and_the_page_rewritten() -> None:
    page = b'\xef\xbb\xbf<html><head></head><img src="https://bat.bing.com/action/0?ti=1">'
    out, rw = rewrite(page, 1)
    assert out.startswith(b"\xef\xbb\xbf<html><head>" + HEAD)
    assert rw.held_back == {"microsoft-uet": 1}
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == 0


# -- memory bound and failing closed ----------------------------------------------------------------------


def test_only_a_split_tag_is_kept_between_chunks() -> None:
    rw = HoldbackRewriter(CATALOG, NOTHING, HEAD, cache=None)
    rw.feed(b"<html><head></head><body>" + b"x" * 2000)
    for _ in range(200):
        out = rw.feed(b"<p class='a'>" + b"text " * 200 + b"</p>\n<!-- c -->")
        assert len(out) > 1000
        assert len(rw._pending) < 16
    rw.feed(b'<img alt="a" src="https://www.faceb')
    assert rw._pending.startswith(b"<img")
    out = rw.feed(b'ook.com/tr?id=1">') + rw.close()
    assert out == b'<img data-category="marketing" data-cg-vendor="meta-pixel" alt="a" data-cg-src="https://www.facebook.com/tr?id=1">'


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_tag_longer_than_the_buffer_is_made_inert_and_the_page_continues(chunk_size: int | None) -> None:
    long_tag = b'<img data-x="' + b"a" * 5000 + b'" src="https://ct.pinterest.com/v3/?tid=1">'
    page = b"<html><head></head><body>" + long_tag + b'<p>after</p><script src="https://bat.bing.com/bat.js"></script>'
    out, rw = rewrite(page, chunk_size, max_buffer_bytes=1024)
    assert out.startswith(b"<html><head>" + HEAD + b'</head><body><img src="data:," srcset="" data-cg-bailout=""')
    assert b"a" * 5000 in out and b"<p>after</p>" in out
    assert b'data-cg-vendor="microsoft-uet"' in out
    assert metrics.value("rewrite_bailouts_total", reason="tag_too_long") == 1


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_generic_tag_longer_than_the_buffer_streams_through_unchanged(chunk_size: int | None) -> None:
    page = (b"<html><head></head><body><div data-x='" + b"b>" * 3000 + b"'>x</div>"
            b'<script src="https://bat.bing.com/bat.js"></script>')
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=1024)
    assert out == page.replace(b"<head>", b"<head>" + HEAD).replace(
        b'<script src="https://bat.bing.com/bat.js">',
        b'<script type="text/plain" data-category="marketing" data-cg-vendor="microsoft-uet" '
        b'data-cg-src="https://bat.bing.com/bat.js">',
    )


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_a_long_tag_that_may_carry_css_has_its_style_shadowed(chunk_size: int | None) -> None:
    """Any element too long to read whose first part shows "style" and a "(": its style attribute (a CSS
    url() to a tracker) is shadowed by an empty one written first, which a browser keeps (fail closed)."""
    style = b'style="background:url(https://www.google-analytics.com/a.gif)"'
    page = (b"<html><head></head><body><div " + style + b" data-x='" + b"b>" * 3000 + b"'>x</div>"
            b"<span " + style + b">short</span></body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=1024)
    assert out.startswith(b"<html><head>" + HEAD + b'</head><body><div data-cg-bailout="" style="" ' + style)
    assert b"b>" * 3000 + b"'>x</div>" in out
    assert b"<span style=\"background:url(data:,cg;analytics;google-analytics;" in out  # short: read and held
    assert metrics.value("rewrite_bailouts_total", reason="tag_too_long") == 1
    # the same element for a visitor who allowed everything: as it is
    assert rewrite(page, chunk_size, max_buffer_bytes=1024, decision=_everything())[0] == page.replace(
        b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_a_long_link_never_pings_whatever_its_first_part_shows(chunk_size: int | None) -> None:
    """An <a> too long to read gets an empty ping first (a browser keeps the first), even when its own ping
    comes only past the buffer: pings are beacons, the link itself still works."""
    page = (b"<html><head></head><body><a href='/next' title='" + b"x" * 3000 + b"'"
            b" ping='https://www.google-analytics.com/collect'>next</a></body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=1024)
    assert b'<a ping="" data-cg-bailout="" style="" href=\'/next\'' in out
    assert b" ping='https://www.google-analytics.com/collect'>next</a>" in out  # streamed, shadowed
    assert rewrite(page, chunk_size, max_buffer_bytes=1024, decision=_everything())[0] == page.replace(
        b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_a_long_breakout_tag_ends_svg_or_math_content_as_a_short_one_does(chunk_size: int | None) -> None:
    """<meta> ends math content whatever its length: the <style> after it is HTML, its url() read as CSS."""
    page = (b"<html><head></head><body><math><meta http-equiv=refresh content='" + b"x" * 3000 + b"'>"
            b"<style>.e{background:url(https://www.google-analytics.com/e.gif)}</style></body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=1024)
    assert b"<meta http-equiv=\"\" data-cg-bailout=\"\"" in out
    assert b".e{background:url(data:,cg;analytics;google-analytics;" in out


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_inline_script_longer_than_the_buffer_runs_unless_its_first_part_shows_a_tracker(
    chunk_size: int | None,
) -> None:
    unknown = b"<script>var a = 1;" + b"/* padding */" * 200 + b"</script>"
    known = b"<script>fbq('init', '1');" + b"/* padding */" * 200 + b"</script>"
    page = b"<html><head></head><body>" + unknown + known + b"<p>end</p>"
    out, rw = rewrite(page, chunk_size, max_buffer_bytes=512)
    assert unknown in out  # a long first-party script is never made inert (issue 8.4)
    assert b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel">fbq(' in out
    assert out.endswith(b"</script><p>end</p>")
    assert metrics.value("rewrite_passthrough_total", reason="inline_script_too_long") == 1
    assert rw.held_back == {"meta-pixel": 1}


@pytest.mark.parametrize("chunk_size", [None, 1, 1000])
def test_a_long_app_state_script_that_mentions_tracker_hosts_runs_untouched(chunk_size: int | None) -> None:
    state = (b'<script>window.__APOLLO_STATE__={"csp":["https://www.google-analytics.com",'
             b'"https://connect.facebook.net"],"items":[' + b'{"id":1,"title":"x"},' * 5000 + b"{}]};</script>")
    page = b"<html><head></head><body>" + state + b"<p>end</p>"
    out, rw = rewrite(page, chunk_size)
    assert out == page.replace(b"<head>", b"<head>" + HEAD)
    assert not rw.held_back


@pytest.mark.parametrize("chunk_size", [None, 1, 1000])
def test_a_long_inline_tracker_is_held_back_restorably(chunk_size: int | None) -> None:
    loader = b"<script>!function(f,b,e,v,n,t,s){};fbq('init','1');fbq('track','PageView');" + b"var x=1;" * 10000
    page = b"<html><head>" + loader + b"</script></head><body><p>end</p>"
    out, rw = rewrite(page, chunk_size)
    assert b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel">!function' in out
    assert b"data-cg-bailout" not in out  # restorable by the banner, not inert for good
    assert out.replace(b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel">',
                       b"<script>").replace(HEAD, b"") == page
    assert rw.held_back == {"meta-pixel": 1}


class _BrokenCatalog(Catalog):
    """A catalog whose URL lookup breaks after a few tags, as a bug in the rewriter path would."""

    def __init__(self, fail_after: int) -> None:
        super().__init__(CATALOG.vendors.values())
        self.calls = 0
        self.fail_after = fail_after

    def vendor_for_url(self, url: str, kind: str) -> VendorRule | None:
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("boom")
        return super().vendor_for_url(url, kind)


@pytest.mark.parametrize("chunk_size", [None, 1, 50])
def test_an_error_mid_page_never_truncates_it_nor_lets_a_tracker_through(chunk_size: int | None) -> None:
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    out, _ = rewrite(source, chunk_size, catalog=_BrokenCatalog(fail_after=3))
    assert live_tracker_urls(out) == []
    assert b"</body>\n</html>" in out and len(out) >= len(source)
    assert b'src="/static/app.js"' in out  # the site's own tags are still there, only inert
    assert metrics.value("rewrite_bailouts_total", reason="error") == 1


def test_make_inert_disarms_every_loading_tag_of_a_chunk() -> None:
    chunk = b'<SCRIPT src="a.js"></SCRIPT><iframe src="b"></iframe><img src="c"><link rel=preload href="d"><p>'
    out = make_inert(chunk)
    assert out.count(b"data-cg-bailout") == 4
    assert out.startswith(b'<SCRIPT type="text/plain" data-cg-bailout="" src="a.js">')


def test_feed_after_close_is_an_error() -> None:
    rw = HoldbackRewriter(CATALOG, NOTHING, HEAD)
    rw.feed(b"<p>x</p>")
    rw.close()
    assert rw.close() == b""
    with pytest.raises(RuntimeError):
        rw.feed(b"more")


# -- cache ------------------------------------------------------------------------------------------------


def test_cache_is_keyed_by_decision() -> None:
    page = (GOLDEN / "head_trackers.src.html").read_bytes()
    everything = Decision(
        granted=frozenset({"necessary", "analytics", "session-replay", "marketing", "preferences"})
    )
    refused, _ = rewrite(page, cached=True)
    granted, _ = rewrite(page, cached=True, decision=everything)
    refused_again, rw = rewrite(page, cached=True)
    assert granted != refused and refused_again == refused
    assert sum(rw.held_back.values()) == 14
    assert CHUNK_CACHE.hits >= 1


def test_cache_stays_within_its_byte_budget() -> None:
    cache = rewriter_module.ChunkCache(max_bytes=200_000, max_entries=1000)
    for i in range(100):
        rw = HoldbackRewriter(CATALOG, NOTHING, HEAD, cache=cache)
        rw.feed(b"<html><head></head><body>" + str(i).encode() * 5000)
        rw.close()
    assert cache.size <= 200_000


def test_variants_of_many_pages_stay_within_the_cache_budget_and_give_the_bytes_of_a_cold_rewrite() -> None:
    """Personalised variants of 60 different pages (each seen three times with fresh tokens): the entries and
    the layouts the variants leave stay within their budgets, and every variant is rewritten as without a
    cache."""
    cache = rewriter_module.ChunkCache(max_bytes=400_000, max_entries=2000)
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    for page_number in range(60):
        body = b"".join(b'<li><a href="/p%d/%d">item %d of page %d</a></li>\n' % (page_number, i, i, page_number)
                        for i in range(400))
        for visit in range(3):
            token = b"%d-%d-" % (page_number, visit) + bytes(str(visit) * (visit + 1), "ascii")
            page = source.replace(b"<h1>", body[:6000] + b'<input name="csrf" value="%s">' % token + body[6000:]
                                  + b"<h1>")
            rw = HoldbackRewriter(CATALOG, NOTHING, HEAD, cache=cache)
            out = rw.feed(page) + rw.close()
            assert out == rewrite(page)[0]
            assert cache.size <= cache.max_bytes
            assert cache._layouts_bytes <= cache.max_bytes // 8
    assert cache._layouts  # layouts were left, and dropped one by one when over budget


def test_a_page_that_differs_in_a_few_places_is_served_from_the_cache_but_for_their_neighbourhood() -> None:
    """Personalised pages (a CSRF token, a user name, a timestamp: of any length, anywhere) cost only the
    bytes around each change once a variant of the page was served twice."""
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    body = b"".join(b'<p class="para">paragraph %d with <a href="/x">a link</a></p>\n' % i for i in range(2000))
    tokens = [b"1", b"22", b"333", b"4" * 40, b"", b"55", b"6" * 300, b"7777"]
    pages = [source.replace(b"<h1>", body[:30_000] + b'<input name="csrf" value="%s">\n' % token + body[30_000:90_000]
                            + b"<span>%s</span>" % token[::-1] + body[90_000:] + b"<h1>") for token in tokens]
    rewrite(pages[0], cached=True)  # never seen: rewritten in one run
    rewrite(pages[1], cached=True)  # seen before, but for two places: kept in segments
    rewrite(pages[2], cached=True)  # ...and the pieces of the two segments around the changes
    rewrite(pages[3], cached=True)  # ...and the runs of segments between them (after tokens of another length)
    entries = len(CHUNK_CACHE._entries)
    for page in pages[4:]:
        misses, hits = CHUNK_CACHE.misses, CHUNK_CACHE.hits
        out, rw = rewrite(page, cached=True)
        # the whole page, then the segment around each change (its cut points are the page's own), then the
        # piece of it holding the change (and the piece after it when a longer token moved its cut)
        assert CHUNK_CACHE.misses - misses <= 1 + 2 * 3
        assert CHUNK_CACHE.hits - hits > 0  # the segments around them, or runs of them at once
        uncached, uncached_rw = rewrite(page, 7)  # the same bytes as without any cache
        assert out == uncached
        assert rw.held_back == uncached_rw.held_back
    # the segments holding tokens never come back: not kept (runs of kept segments may be merged anew after a
    # token of another length)
    assert len(CHUNK_CACHE._entries) <= entries + 2
    kept = b"".join(part for entry, _ in CHUNK_CACHE._entries.values() for part in entry.parts if part)
    assert not any(b'value="%s"' % token in kept for token in tokens[4:])


#: short spans a personalised page changes in: some pass as they are, some must be read (a tag that matters, a
#: word that makes one a candidate, markup cut by the span's end)
_SPANS = [
    b'\n<input type="hidden" name="t1" value="a1f8d3d88">  <p>text', b"plain text &amp; more", b"",
    b'<input type="image" src="https://www.googletagmanager.com/x.png">', b'<a href="/x" title="ping">y</a>',
    b"<a href=/x>ping</a>", b'<meta http-equiv="refresh" content="0;url=/x">', b'<div style="b:url(/x)">',
    b"<p>a</p><inp", b"text <", b"</p></div>", b"<!-- c -->", b"<script>x()</script>", b"a < b > c",
    b"<td background=/x.png>", b'<p title="a>b">c</p>', b"<svg><p>", b"<img src=/i.png>", b"<title>t</title>",
    b'<span data-x="&lpar;">', b"<noscript>", b"<base href=/b/>",
]


@pytest.mark.parametrize("span", _SPANS)
def test_a_span_said_to_pass_as_it_is_is_what_a_run_over_it_emits(span: bytes) -> None:
    """The driver skips the run over a short span read again when the tokenizer says it passes as it is: the
    run must then emit exactly the span and end in the state it started in."""
    rw = HoldbackRewriter(CATALOG, NOTHING, HEAD)
    rw.feed(b"<html><head><title>t</title></head><body>" + b"<p>filler</p>\n" * 100)
    tokenizer = rw._tokenizer
    state = tokenizer.state()
    passes = tokenizer.passes_unchanged(span)
    out: list[bytes | None] = []
    end = tokenizer.run(span, False, out)
    if passes:
        assert b"".join(out) == span and None not in out and end == len(span) and tokenizer.state() == state
    else:
        assert span and any(word in span for word in (b"<", b"&lpar;"))


def test_variants_whose_token_makes_a_tag_matter_give_the_bytes_of_a_cold_rewrite() -> None:
    """A token that turns a tag that does not matter into one that does (an image input, a pinging link, a
    refresh) in a variant of a page served from the cache: rewritten as without a cache, no tracker live."""
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    body = b"".join(b'<p class="para">paragraph %d with <a href="/x">a link</a></p>\n' % i for i in range(600))
    tracker = b"https://www.googletagmanager.com/x.png"
    tokens = [b"hidden", b"hidden2", b"image", b"hidden", b"IMAGE", b"ping", b"refresh", b"hidden3", b"im", b"x"]
    pages = [source.replace(b"<h1>", body[:9_000] + b'<input type="%s" src="%s">\n' % (token, tracker)
                            + body[9_000:18_000] + b'<a href="/y" %s="%s">z</a>\n' % (token, tracker)
                            + body[18_000:] + b'<meta http-equiv="%s" content="0;url=%s">' % (token, tracker)
                            + b"<h1>") for token in tokens]
    for page in pages:
        out, rw = rewrite(page, cached=True)
        uncached, uncached_rw = rewrite(page, 7)
        assert out == uncached
        assert rw.held_back == uncached_rw.held_back
        assert live_tracker_urls(out) == []


def test_a_page_never_seen_before_is_rewritten_in_one_run_and_kept_whole_from_its_second_time() -> None:
    page = (GOLDEN / "head_trackers.src.html").read_bytes() * 20
    out, _ = rewrite(page, cached=True)
    assert CHUNK_CACHE.hits == 0 and len(CHUNK_CACHE._entries) == 0  # nothing kept of a page seen once
    assert rewrite(page, cached=True)[0] == out
    hits = CHUNK_CACHE.hits
    assert rewrite(page, cached=True)[0] == out
    assert CHUNK_CACHE.hits == hits + 1  # the whole page, at once


def test_a_page_served_again_to_the_same_banner_block_reuses_the_rewritten_bytes() -> None:
    source = (GOLDEN / "head_trackers.src.html").read_bytes() * 20
    rewrite(source, cached=True)
    rewrite(source, cached=True)  # kept whole from its second time on
    rw1 = HoldbackRewriter(CATALOG, NOTHING, HEAD)
    rw2 = HoldbackRewriter(CATALOG, NOTHING, HEAD)
    first, second = rw1.feed(source), rw2.feed(source)
    assert first is second  # no new half-megabyte string per request
    assert first + rw1.close() == rewrite(source)[0]


def test_a_rewritten_page_is_freed_at_once_without_the_garbage_collector() -> None:
    # a rewriter tied into a reference cycle lives on until a collection: a page's worth of objects per
    # request for the collector to walk (srcdoc iframes, svg, scripts, raw text: every handler runs)
    pages = b"".join((GOLDEN / f"{case}.src.html").read_bytes() for case in CASES)
    rewrite(pages, cached=True)
    gc.collect()
    gc.disable()
    try:
        for chunk_size in (None, 7, 4096):
            rewrite(pages, chunk_size, cached=True)
            rewrite(pages, chunk_size)
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("opening", "filler", "closing"),
    [
        (b"<!--", b"a comment line <p> -- - ->\n", b"-->"),
        (b"<style>", b"p { color: red } /* <div> */\n", b"</style>"),
        (b"<script src='/app.js'>", b"var a = '<!--' + '-->';\n", b"</script>"),
        (b"<noscript>", b"<p>enable scripts</p>\n", b"</noscript>"),
        (b"<textarea>", b"<b>not bold</b>\n", b"</textarea>"),
        (b"<svg><![CDATA[", b"x < y ]] >\n", b"]]></svg>"),
        (b"<!DOCTYPE html", b" long doctype", b">"),
    ],
)
def test_memory_stays_bounded_inside_long_comments_raw_text_and_scripts(
    opening: bytes, filler: bytes, closing: bytes
) -> None:
    rw = HoldbackRewriter(CATALOG, NOTHING, HEAD, max_buffer_bytes=1024, cache=None)
    out = [rw.feed(b"<html><head></head><body>" + opening)]
    for _ in range(3000):
        out.append(rw.feed(filler))
        assert len(rw._pending) <= max(1024, PRESCAN_WAIT_BYTES)  # the buffer, or the first KiB and a bit
    out.append(rw.feed(closing + b'<img src="https://bat.bing.com/action/0">') + rw.close())
    page = b"".join(out)
    assert page.count(filler) == 3000
    assert b'data-cg-src="https://bat.bing.com/action/0"' in page


def test_native_scanner_finds_what_the_regexes_find() -> None:
    from consent_gateway.html import scanner as native

    scanner = native.native_scanner_for(CATALOG, native.HTML_STARTS, native.HTML_ENDS)
    if scanner is None:
        pytest.skip("hyperscan is not installed (optional): the pure-Python path is the one tested")
    data = (b"<p title='a>b'>x</p><SCRIPT src=//WWW.Google-Analytics.com/ga.js></script><!-- c -->"
            b"<script>fbq('init'); gtag('js'); fbq('track')</script><img src=/a.png>")
    scan = scanner.scan(data)
    assert [data[p : p + 4] for p in scan.candidates] == [b"<SCR", b"<!--", b"<scr", b"<img"]
    assert scan.quoted_between(0, 20) and not scan.quoted_between(20, len(data))
    start = data.index(b"<SCRIPT")
    assert scan.needle_within(start, data.index(b">", start) + 1)
    assert not scan.needle_within(data.index(b"<img"), len(data))
    body = (data.index(b"fbq"), data.index(b"</script>", data.index(b"fbq")))
    found = [data[s:e] for s, e in scan.signatures_in_order(*body)]
    assert found == [m.group() for m in CATALOG._inline_bytes_re.finditer(data[body[0] : body[1]])]  # type: ignore[union-attr]
    assert found == [b"fbq(", b"gtag(", b"fbq("]


# -- third parties nobody classified, in every element kind ----------------------------------------------


def test_every_element_kind_holds_an_unclassified_third_party_and_lets_the_sites_own_through() -> None:
    from consent_gateway.thirdparty import HostCounters, ThirdParties

    counters = HostCounters()
    catalog = CATALOG.with_third_parties(ThirdParties(mode="hold", counters=counters))
    decision = Decision(granted=frozenset({"necessary"}), site="example.org")
    page = (b'<html><head><link rel=stylesheet href="https://css.unknown-ads.example/s.css">'
            b'<link rel=stylesheet href="https://static.example.org/site.css"></head><body>'
            b'<video poster="//img.unknown-ads.example/p.jpg"></video>'
            b'<a href=/x ping="https://beacon.unknown-ads.example/p">x</a>'
            b"<iframe srcdoc=\"<img src='https://px.unknown-ads.example/i.gif'>\"></iframe>"
            b'<img src="https://cdn.example.org/logo.png" alt="">'
            b'<base href="https://tags.unknown-ads.example/"><script src="t.js"></script></body></html>')
    for size in (None, 1, 7):
        out, rw = rewrite(page, size, decision=decision, catalog=catalog)
        assert out.count(b'data-category="unclassified" data-cg-vendor="unclassified"') == 5
        for held in (b'data-cg-href="https://css.unknown-ads.example/s.css"', b'data-cg-poster="//img.unknown-ads',
                     b'data-cg-ping="https://beacon.unknown', b"data-cg-srcdoc=", b'data-cg-src="t.js"'):
            assert held in out
        # the site's own hosts are not "unclassified"
        assert b'href="https://static.example.org/site.css"' in out
        assert b'<img src="https://cdn.example.org/logo.png"' in out
        assert rw.held_back == {"unclassified": 5}
    assert {count.host for count in counters.top()} >= {"css.unknown-ads.example", "tags.unknown-ads.example"}
    everything = Decision(granted=frozenset({"necessary", "unclassified"}), site="example.org")
    assert rewrite(page, 7, decision=everything, catalog=catalog)[0] == page.replace(b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("size", [None, 600, 20000])
def test_unclassified_hosts_are_counted_on_every_page_view_also_from_the_chunk_cache(size: int | None) -> None:
    from consent_gateway.thirdparty import HostCounters, ThirdParties

    counters = HostCounters()
    catalog = CATALOG.with_third_parties(ThirdParties(mode="hold", counters=counters))
    decision = Decision(granted=frozenset({"necessary"}), site="example.org")
    filler = b"<p>" + b"text " * 4000 + b"</p>\n"  # long enough for whole-page and segment caching
    page = (b"<html><head></head><body>" + filler + b'<img src="https://px.unknown-ads.example/i.gif">'
            + filler + b'<script src="https://tags.unknown-ads.example/t.js"></script>' + filler + b"</body></html>")
    outputs = set()
    for _ in range(3):
        out, _ = rewrite(page, size, decision=decision, catalog=catalog, cached=True)
        outputs.add(out)
    assert len(outputs) == 1
    assert CHUNK_CACHE.hits > 0  # served from the cache from the second view on
    counts = {count.host: (count.seen, count.held) for count in counters.top()}
    assert counts == {"px.unknown-ads.example": (3, 3), "tags.unknown-ads.example": (3, 3)}


def _everything(catalog: Catalog = CATALOG) -> Decision:
    categories = {vendor.category for vendor in catalog.vendors.values()} | {"necessary", "unclassified"}
    return Decision(granted=frozenset(categories))


@pytest.mark.parametrize("chunk_size", [None, 1, 100, 333])
def test_a_tag_too_long_to_read_comes_back_for_a_visitor_who_allowed_everything(chunk_size: int | None) -> None:
    """A bail-out is not for good: once everything is allowed (data-cg-bailout hides the tag's URLs, it
    cannot be restored in place), this visitor gets the tag as it is from the next page view on."""
    long_tag = b'<img data-x="' + b"a" * 5000 + b'" src="https://ct.pinterest.com/v3/?tid=1">'
    page = b"<html><head></head><body>" + long_tag + b"<p>after</p></body></html>"
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=1024, decision=_everything())
    assert out == page.replace(b"<head>", b"<head>" + HEAD)
    assert metrics.value("rewrite_passthrough_total", reason="tag_too_long") == 1
    # one category short of everything: still held, fail closed
    partial = Decision(granted=_everything().granted - {"unclassified"})
    assert b"data-cg-bailout" in rewrite(page, chunk_size, max_buffer_bytes=1024, decision=partial)[0]


@pytest.mark.parametrize("chunk_size", [None, 1, 50])
def test_after_an_error_the_page_passes_as_it_is_for_a_visitor_who_allowed_everything(chunk_size: int | None
                                                                                      ) -> None:
    source = (GOLDEN / "head_trackers.src.html").read_bytes()
    catalog = _BrokenCatalog(fail_after=3)
    out, _ = rewrite(source, chunk_size, catalog=catalog, decision=_everything(catalog))
    assert b"data-cg-bailout" not in out
    assert out.replace(HEAD, b"") == source
    assert metrics.value("rewrite_passthrough_total", reason="error") == 1


@pytest.mark.parametrize("opener", [b"<noscript>", b"<select><xmp>"])
def test_a_tracker_tag_cut_inside_its_name_in_noscript_text_is_held_at_every_cut(opener: bytes) -> None:
    """<noscript> (and raw text a <select> makes markup) holds its tracker tags; a chunk ending in "<scrip"
    must keep the name for the next chunk, not emit its "<" as text and lose the tag."""
    tag = b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    page = b"<!DOCTYPE html><html><head></head><body>" + opener + b"x" * 1200 + tag * 3
    whole, _ = rewrite(page)
    assert whole.count(b'type="text/plain"') == 3
    start = page.index(tag)
    for cut in range(start, start + 9):
        rw = HoldbackRewriter(CATALOG, NOTHING, HEAD, cache=None)
        assert rw.feed(page[:cut]) + rw.feed(page[cut:]) + rw.close() == whole, cut


# svg/math content: what a script there runs, and where the tree builder leaves that content -----------------

FBQ = b"fbq('init', '1');"
HELD_FBQ = b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel"'


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 100])
@pytest.mark.parametrize("svg_script", [
    # a nested script's end tag ends it, not the outer one: the outer runs the text after it (property
    # test, seed 483)
    b"<svg><script>var a;<script></script>" + FBQ + b"</script>",
    b"<svg><script><script src=/own.js></script>" + FBQ + b"</script>",
    # a "</script>" in a CDATA section or a comment does not end it
    b"<svg><script><![CDATA[</script>]]>" + FBQ + b"</script>",
    b"<svg><script><!--</script>-->" + FBQ + b"</script>",
    # its text is what the character references stand for
    b"<svg><script>fbq&#40;'init', '1');</script>",
])
def test_an_svg_script_is_judged_by_the_text_it_runs(svg_script: bytes, chunk_size: int | None) -> None:
    out, _ = rewrite(b"<html><head></head><body>" + svg_script + b"</svg></body></html>", chunk_size,
                     max_buffer_bytes=256)
    assert out.split(b"<svg>")[1].startswith(HELD_FBQ)


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_a_first_party_svg_script_in_a_cdata_section_runs_as_it_is(chunk_size: int | None) -> None:
    page = b"<html><head></head><body><svg><g></g><script><![CDATA[ if (a < b) go(); ]]></script></svg></body></html>"
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert out == page.replace(b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 100])
@pytest.mark.parametrize(("page", "held"), [
    # </template>, </a>, </div>… close the svg content when that HTML element is open below it: <script/> is
    # then an HTML script, its text runs (property test, seed 489)
    (b"<template><svg></template><script/>" + FBQ + b"</script>", HELD_FBQ),
    (b"<a href=/x><svg></a><script/>" + FBQ + b"</script>", HELD_FBQ),
    # an HTML <style> (its CSS applies), an HTML <img> for <image>
    (b"<div><svg></div><style/>.a{background:url(https://www.google-analytics.com/a.gif)}</style>",
     b".a{background:url(data:,cg;analytics;google-analytics;"),
    (b"<a><svg></a><image src=https://tr.snapchat.com/p>", b'<image data-category="marketing"'),
    # ...and the text of an HTML <xmp> or <script> does not start a comment that hides the tags after it
    (b'<a><svg></a><xmp><!--</xmp><img src="https://www.facebook.com/tr?id=1">-->',
     b'<img data-category="marketing"'),
    (b'<a><svg></a><script>x<!--</script><img src="https://www.facebook.com/tr?id=1">-->',
     b'<img data-category="marketing"'),
    # ...while to a tree builder still in the svg content, a <script> in its <style> runs
    (b"<svg><g></g><style/><script>" + FBQ + b"</script>", HELD_FBQ),
])
def test_an_end_tag_that_may_close_svg_content_holds_what_either_reading_runs(
    page: bytes, held: bytes, chunk_size: int | None
) -> None:
    out, _ = rewrite(b"<html><head></head><body>" + page + b"</body></html>", chunk_size, max_buffer_bytes=256)
    assert held in out
    assert rewrite(page, chunk_size, decision=_everything(), max_buffer_bytes=256)[0] == HEAD + page


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 100])
@pytest.mark.parametrize("style", [
    b"<style>body{background:url(https://www.google-analytics.com/a.gif)}</style>",
    b"<style><![CDATA[body{background:url(https://www.google-analytics.com/a.gif)}]]></style>",
])
def test_an_svg_style_has_its_css_fetches_held_as_an_html_one(style: bytes, chunk_size: int | None) -> None:
    page = b"<html><head></head><body><svg>" + style + b"<script>" + FBQ + b"</script></svg></body></html>"
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert b"body{background:url(data:,cg;analytics;google-analytics;" in out
    assert HELD_FBQ in out  # and a script after it is still an svg script
    # a math <style> is no style at all
    math = page.replace(b"<svg>", b"<math>").replace(b"</svg>", b"</math>")
    assert b"url(https://www.google-analytics.com/a.gif)" in rewrite(math, chunk_size, max_buffer_bytes=256)[0]


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_once_svg_content_in_doubt_ends_a_comment_is_a_comment_again(chunk_size: int | None) -> None:
    page = (b'<html><head></head><body><svg><g></x></svg><!-- <img src="https://www.facebook.com/tr?id=1"> -->'
            b"</body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert out == page.replace(b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 100])
@pytest.mark.parametrize("svg", [b"<svg>", b"<a><svg></a>"])
def test_a_tag_in_an_svg_style_has_its_style_attribute_read(svg: bytes, chunk_size: int | None) -> None:
    """Markup to a tree builder in svg content: the <span> ends it, its style applies (property test, seed 778)."""
    page = (b"<html><head></head><body>" + svg + b'<style><span style="background:url&#40;'
            b'https://www.facebook.com/tr?id=1&#41;">x</span></style></body></html>')
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert b'<span style="background:url(data:,cg;marketing;meta-pixel;' in out


FB_IMG = b'<img src="https://www.facebook.com/tr?id=1">'
HELD_FB_IMG = b'<img data-category="marketing"'


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 100])
@pytest.mark.parametrize("point", [
    b"<svg><title></title>", b"<svg><desc>d</desc>", b"<svg><foreignObject><p>x</p></foreignObject>",
    b"<svg><title><span>t</span></title>", b"<math><mi>x</mi>", b"<math><annotation-xml></annotation-xml>",
    # nested: the end tag of the outer integration point leads back to the outer svg
    b"<svg><title><svg><title></title></svg></title>",
])
@pytest.mark.parametrize("raw", [b"script", b"textarea"])
def test_the_end_of_an_integration_point_leads_back_to_svg_content(
    point: bytes, raw: bytes, chunk_size: int | None
) -> None:
    """Past </title>, the tree builder is in the svg content again: a <script>, <textarea>… there is an svg
    element whose content is markup, the tracker tag in it loads (property test; Chromium)."""
    page = (b"<html><head></head><body>" + point + b"<" + raw + b">" + FB_IMG + b"</" + raw + b"></svg></body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert HELD_FB_IMG in out
    assert rewrite(page, chunk_size, decision=_everything(), max_buffer_bytes=256)[0] == page.replace(
        b"<head>", b"<head>" + HEAD)


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_an_svg_title_with_its_svg_closed_leaves_the_html_after_it_as_it_was(chunk_size: int | None) -> None:
    page = (b"<html><head></head><body><svg><title>Menu</title><path d='M0 0'/></svg>"
            b"<textarea>" + FB_IMG + b"</textarea><!-- " + FB_IMG + b" --></body></html>")
    out, _ = rewrite(page, chunk_size, max_buffer_bytes=256)
    assert out == page.replace(b"<head>", b"<head>" + HEAD)
