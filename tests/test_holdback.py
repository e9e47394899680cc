"""Per-tag holdback: attribute parsing with the tokenizer's rules, executable scripts, the held-back form."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog, VendorRule
from consent_gateway.decision import Decision
from consent_gateway.html.holdback import (
    fetched_urls,
    first_value,
    hold_back_tag,
    parse_attributes,
    script_is_executable,
)

CATALOG = Catalog.builtin()
NOTHING = Decision(granted=frozenset({"necessary"}))


def values(tag: bytes) -> list[tuple[bytes, bytes | None]]:
    return [(a.name, a.value) for a in parse_attributes(tag)[1]]


def test_attributes_are_read_like_the_html_tokenizer_reads_them() -> None:
    assert values(b"<IMG SRC=a.png Alt='x y' data-x=\"1>2\" hidden>") == [
        (b"src", b"a.png"), (b"alt", b"x y"), (b"data-x", b"1>2"), (b"hidden", None)
    ]
    assert values(b'<img a"b=c =d e = "f">') == [(b'a"b', b"c"), (b"=d", None), (b"e", b"f")]
    assert values(b"<script/src=x.js/>") == [(b"src", b"x.js/")]
    assert values(b"<link rel=preload\nhref=//x>") == [(b"rel", b"preload"), (b"href", b"//x")]


def test_first_duplicate_attribute_wins() -> None:
    _, attrs = parse_attributes(b'<script src="a.js" SRC="b.js">')
    assert first_value(attrs, b"src") == b"a.js"
    assert first_value(attrs, b"type") is None


@pytest.mark.parametrize(
    ("tag", "runs"),
    [
        (b"<script>", True),
        (b'<script type="">', True),
        (b"<script type=module>", True),
        (b'<script type=" Text/JavaScript ">', True),
        (b'<script type="text/javascript; charset=utf-8">', True),
        (b'<script type="text/plain" data-category="analytics">', False),
        (b'<script type="application/ld+json">', False),
        (b'<script type="importmap">', False),
    ],
)
def test_only_javascript_types_run(tag: bytes, runs: bool) -> None:
    assert script_is_executable(parse_attributes(tag)[1]) is runs


def test_held_back_iframe_and_img_move_src_and_srcset() -> None:
    held = hold_back_tag(b'<img srcset="https://ct.pinterest.com/v3/?tid=1 1x" src="/a.png" alt="">', "img",
                         CATALOG, NOTHING)
    assert held is not None and held.vendor.id == "pinterest-tag"
    assert held.tag == (b'<img data-category="marketing" data-cg-vendor="pinterest-tag" '
                        b'data-cg-srcset="https://ct.pinterest.com/v3/?tid=1 1x" data-cg-src="/a.png" alt="">')


def test_link_is_held_back_only_when_it_fetches() -> None:
    preconnect = b'<link rel="preconnect dns-prefetch" href="https://www.googletagmanager.com" crossorigin>'
    held = hold_back_tag(preconnect, "link", CATALOG, NOTHING)
    assert held is not None
    assert held.tag == (b'<link data-category="analytics" data-cg-vendor="google-tag-manager" '
                        b'rel="preconnect dns-prefetch" data-cg-href="https://www.googletagmanager.com" crossorigin>')
    canonical = b'<link rel="canonical" href="https://www.youtube.com/embed/x">'
    assert hold_back_tag(canonical, "link", CATALOG, NOTHING) is None


def test_hand_marked_script_is_left_as_it_is() -> None:
    tag = b'<script type="text/plain" data-category="analytics" src="https://static.hotjar.com/c/hotjar-1.js">'
    assert hold_back_tag(tag, "script", CATALOG, NOTHING) is None


def test_inline_script_is_held_back_by_its_body() -> None:
    held = hold_back_tag(b'<script nonce="n">', "script", CATALOG, NOTHING, inline_body=b"fbq('init','1')")
    assert held is not None
    assert held.tag == b'<script type="text/plain" data-category="marketing" data-cg-vendor="meta-pixel" nonce="n">'
    assert hold_back_tag(b"<script>", "script", CATALOG, NOTHING, inline_body=b"var a = 1;") is None


def test_vendor_category_and_id_are_escaped_in_the_held_back_form() -> None:
    catalog = CATALOG.merged([{"id": "x", "category": 'we"ird', "script_hosts": ["x.example"]}])
    held = hold_back_tag(b'<script src="https://x.example/a.js">', "script", catalog, NOTHING)
    assert held is not None and b'data-category="we&quot;ird"' in held.tag


# -- every element that fetches (issue 8.3) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "tag", "urls"),
    [
        ("video", b'<video src="/v.mp4" poster=//t.example/p.jpg>', [b"/v.mp4", b"//t.example/p.jpg"]),
        ("source", b'<source srcset="/a.jpg 1x, https://t.example/b.jpg 2x">', [b"/a.jpg", b"https://t.example/b.jpg"]),
        ("input", b"<input type=IMAGE src=/go.png>", [b"/go.png"]),
        ("input", b"<input type=text src=/not-fetched.png>", []),
        ("a", b'<a href="/x" ping=" /p1  https://t.example/p2 ">', [b"/p1", b"https://t.example/p2"]),
        ("a", b'<a href="https://t.example/">', []),  # following a plain link is the visitor's choice
        ("meta", b'<meta http-equiv="Refresh" content="5; URL=\'https://t.example/next\'">', [b"https://t.example/next"]),
        ("meta", b'<meta http-equiv=refresh content="0;url=/next">', [b"/next"]),
        ("meta", b"<meta http-equiv=refresh content=30>", [b""]),  # a reload of the page itself
        ("meta", b'<meta name=description content="https://t.example/">', []),
        ("link", b'<link rel="alternate stylesheet" href=/dark.css>', [b"/dark.css"]),
        ("link", b'<link rel=canonical href="https://t.example/">', []),
        ("body", b"<body background=/bg.gif>", [b"/bg.gif"]),
        ("svg:image", b'<image xlink:href="/i.png">', [b"/i.png"]),
        ("svg:script", b'<script href="/s.js">', [b"/s.js"]),
    ],
)
def test_the_urls_an_element_fetches(kind: str, tag: bytes, urls: list[bytes]) -> None:
    assert fetched_urls(kind, parse_attributes(tag)[1]) == urls


def test_a_held_element_has_every_fetching_attribute_renamed_and_the_others_kept() -> None:
    held = hold_back_tag(b'<video controls src=/v.mp4 poster="https://i.ytimg.com/vi/x/0.jpg" width=9>', "video",
                         CATALOG, NOTHING)
    assert held is not None and held.vendor.id == "youtube"
    assert held.tag == (b'<video data-category="marketing" data-cg-vendor="youtube" controls data-cg-src=/v.mp4 '
                        b'data-cg-poster="https://i.ytimg.com/vi/x/0.jpg" width=9>')
    held = hold_back_tag(b'<a href=/x ping="https://www.google-analytics.com/p">', "a", CATALOG, NOTHING)
    assert held is not None
    assert held.tag == (b'<a data-category="analytics" data-cg-vendor="google-analytics" href=/x '
                        b'data-cg-ping="https://www.google-analytics.com/p">')


def test_relative_urls_after_a_base_that_names_a_vendor_are_that_vendors() -> None:
    tag = b'<img src="pixel.gif">'
    assert hold_back_tag(tag, "img", CATALOG, NOTHING) is None
    held = hold_back_tag(tag, "img", CATALOG, NOTHING, base="https://www.google-analytics.com/")
    assert held is not None and held.vendor.id == "google-analytics"
    assert hold_back_tag(tag, "img", CATALOG, NOTHING, base="https://cdn.example.org/") is None


def test_an_iframe_is_held_when_its_inline_document_holds_a_tracker() -> None:
    seen: list[str] = []

    def srcdoc_vendors(document: str) -> list[VendorRule]:
        seen.append(document)
        return [CATALOG.vendors["meta-pixel"]] if "fbq" in document else []

    held = hold_back_tag(b'<iframe srcdoc="&lt;script&gt;fbq()&lt;/script&gt;">', "iframe", CATALOG, NOTHING,
                         srcdoc_vendors=srcdoc_vendors)
    assert held is not None and held.tag.startswith(b'<iframe data-category="marketing" data-cg-vendor="meta-pixel" '
                                                    b"data-cg-srcdoc=")
    assert seen == ["<script>fbq()</script>"]
    assert hold_back_tag(b'<iframe srcdoc="<p>hi</p>">', "iframe", CATALOG, NOTHING,
                         srcdoc_vendors=srcdoc_vendors) is None


# -- srcset: the browser may fetch any candidate (issue 8, first-party elements held) ---------------------


def _hold_on_site(tag: bytes, kind: str = "img") -> str | None:
    from consent_gateway.thirdparty import HostCounters, ThirdParties

    catalog = CATALOG.with_third_parties(ThirdParties(mode="hold", counters=HostCounters()))
    held = hold_back_tag(tag, kind, catalog, Decision(granted=frozenset({"necessary"}), site="example.org"))
    return None if held is None else held.vendor.id


@pytest.mark.parametrize(
    ("tag", "held_as"),
    [
        # first-party src and candidates, or an allowed CDN among them: the image shows before consent
        (b'<img src="/a.jpg" srcset="/a-320.jpg 320w, https://img.example.org/a-640.jpg 640w">', None),
        (b'<img src="/a.jpg" srcset="https://cdnjs.cloudflare.com/x/a.png 1x, /a@2x.jpg 2x">', None),
        (b'<source srcset="https://static.example.org/a.webp 1x, https://static.example.org/b.webp 2x">', None),
        # one tracker candidate among first-party ones: the browser may pick it (by density, width, cache)
        (b'<img src="/a.jpg" srcset="/a-320.jpg 320w, https://ct.pinterest.com/v3/?tid=1 640w">', "pinterest-tag"),
        # a first-party src does not clear a srcset on a host nobody classified (it is what gets fetched)
        (b'<img src="/a.jpg" srcset="https://i0.cdn-unknown.example/a.jpg?w=320 320w">', "unclassified"),
    ],
)
def test_a_srcset_is_held_when_any_candidate_is_a_third_party_nobody_allowed(tag: bytes, held_as: str | None
                                                                              ) -> None:
    kind = "source" if tag.startswith(b"<source") else "img"
    assert _hold_on_site(tag, kind) == held_as
