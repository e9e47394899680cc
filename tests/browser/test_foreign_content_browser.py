"""svg/math content in a real Chromium: each page below runs a tracker's script or fetches from a tracker
host as it is (checked first, so the shape is live in the browser and not only in a parser's reading), and
nothing of it once rewritten for a visitor who granted nothing. The rewritten page is loaded as it is (no
gateway, no banner): what is checked is the held form itself."""

from __future__ import annotations

from typing import Any

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.decision import Decision
from consent_gateway.html import HoldbackRewriter

pytestmark = pytest.mark.browser

RUN = "window.ran=1;fbq('init', '1');"
PAGES = {
    # what an svg script runs: the text of its children, past a nested script, a CDATA section, a comment
    "nested script": f"<svg><script>var a;<script></script>{RUN}</script></svg>",
    "cdata": f"<svg><script><![CDATA[//</script>\n]]>{RUN}</script></svg>",
    "comment": f"<svg><script><!--</script>-->{RUN}</script></svg>",
    "character reference": "<svg><script>window.ran=1;fbq&#40;'init', '1');</script></svg>",
    # where the tree builder leaves svg content on an end tag the svg does not close
    "template": f"<template><svg></template><script/>{RUN}</script>",
    "link": f"<a href=/x><svg></a><script/>{RUN}</script>",
    "svg style": f"<svg><g></g><style/><script>{RUN}</script></svg>",
    "xmp": '<a><svg></a><xmp><!--</xmp><img src="https://www.facebook.com/tr?id=1">-->',
    "html style": "<div><svg></div><style/>body{background:url(https://www.google-analytics.com/a.gif)}</style>",
    "image": '<a><svg></a><image src="https://tr.snapchat.com/p">',
    # an svg <style> applies its CSS
    "svg style css": "<svg><style>body{background:url(https://www.google-analytics.com/a.gif)}</style></svg>",
    # past the end of an integration point (<title>, <desc>, <foreignObject>), svg content again: the content
    # of a <script> or <textarea> there is markup
    "svg title": '<svg><title></title><script><img src="https://www.facebook.com/tr?id=1"></script></svg>',
    "svg desc": '<svg><desc>d</desc><textarea><img src="https://www.facebook.com/tr?id=1"></textarea></svg>',
    "foreignObject": ('<svg><foreignObject><p>x</p></foreignObject><textarea>'
                      '<img src="https://www.facebook.com/tr?id=1"></textarea></svg>'),
}
TRACKER_HOSTS = ("www.facebook.com", "www.google-analytics.com", "tr.snapchat.com")


def _rewritten(page: bytes) -> bytes:
    rw = HoldbackRewriter(Catalog.builtin(), Decision(granted=frozenset({"necessary"})), b"", cache=None)
    return rw.feed(page) + rw.close()


def _runs(browser: Any, page: bytes) -> tuple[int, list[str]]:
    """window.ran after the page loaded, and the tracker URLs it requested (answered empty, never sent)."""
    tab = browser.new_page()
    try:
        requests: list[str] = []

        def answer(route: Any) -> None:
            requests.append(route.request.url)
            route.fulfill(status=200, body=b"")

        tab.route("**/*", answer)
        tab.set_content(page.decode(), wait_until="load")
        tab.wait_for_timeout(100)
        return tab.evaluate("window.ran"), [url for url in requests if any(h in url for h in TRACKER_HOSTS)]
    finally:
        tab.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_what_svg_content_runs_or_fetches_as_it_is_stays_held_once_rewritten(browser: Any, name: str) -> None:
    page = (b"<!DOCTYPE html><html><head><script>window.fbq=function(){};window.ran=0</script></head><body>"
            + PAGES[name].encode() + b"</body></html>")
    assert _runs(browser, page) != (0, [])  # live as it is
    assert _runs(browser, _rewritten(page)) == (0, [])
