"""Per-tag holdback: attribute parsing with the tokenizer's rules, executable scripts, the held-back form."""

from __future__ import annotations

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html.holdback import first_value, hold_back_tag, parse_attributes, script_is_executable

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
