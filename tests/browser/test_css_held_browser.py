"""CSS fetches in a real Chromium behind the real gateway (issue 8): a tracker's image in a style attribute,
an unclassified host's image in a <style> element and a tracker's stylesheet by ``@import "…"`` reach nobody
before consent while the rest of the page's CSS applies; "accept all" brings each back in place, without a
reload.

As in test_held_elements_browser, the trackers are served on loopback under their real host names
(``www.google-analytics.com.localhost``) by the same bare site, which records every request it receives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import SECRET_KEYS, Visit, gateway_config, serve
from .test_held_elements_browser import GIF, TrackedSite, settle

pytestmark = pytest.mark.browser

ATTRIBUTE = "www.google-analytics.com"  # a catalog vendor (analytics), in a style attribute
UNKNOWN = "px.unknown-tracker"  # nobody classified it: held as "unclassified", in <style> text
IMPORTED = "static.hotjar.com"  # a catalog vendor's stylesheet, by @import "…"


def page(port: str) -> bytes:
    def at(host: str) -> str:
        return f"http://{host}.localhost:{port}"

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CSS fetches</title>
<style>@import "{at(IMPORTED)}/imported.css";
#text {{ background-image: url('{at(UNKNOWN)}/u.gif'); color: rgb(4, 5, 6); }}</style>
</head><body>
<h1 id="probe">CSS fetches</h1>
<div id="attr" style="width: 8px; height: 8px; background-image: url({at(ATTRIBUTE)}/a.gif); color: rgb(7, 8, 9)"
>x</div>
<p id="text">text</p>
<div id="own" style="width: 8px; height: 8px; background-image: url(/own.gif)">own</div>
</body></html>
""".encode()


def css_site(host: str, port: str, path: str) -> tuple[bytes, bytes]:
    if path.endswith(".css"):
        return b"#probe { color: rgb(1, 2, 3); }", b"text/css"
    if path.endswith(".gif"):
        return GIF, b"image/gif"
    return page(port), b"text/html; charset=utf-8"


@pytest.fixture(scope="module")
def site() -> TrackedSite:
    return TrackedSite(css_site)


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory, site: TrackedSite) -> Iterator[str]:
    from consent_gateway.middleware import ConsentGateway

    config = gateway_config(tmp_path_factory.mktemp("css-held-data"))
    with serve(ConsentGateway(site, config, secret_keys=SECRET_KEYS)) as url:
        yield url


def computed(v: Visit, element: str, prop: str) -> Any:
    return v.page.evaluate(f"() => getComputedStyle(document.getElementById('{element}'))['{prop}']")


def test_css_fetches_reach_no_tracker_before_consent_and_the_rest_of_the_css_applies(
    visit: Any, site_url: str, site: TrackedSite
) -> None:
    v: Visit = visit(base_url=site_url)
    site.hits.clear()
    v.goto("/")
    settle(v)
    assert site.tracker_hits() == []
    assert ("127.0.0.1", "/own.gif") in site.hits  # the site's own image is untouched
    assert computed(v, "own", "backgroundImage").endswith('/own.gif")')
    assert computed(v, "text", "color") == "rgb(4, 5, 6)"
    assert computed(v, "attr", "color") == "rgb(7, 8, 9)"
    assert computed(v, "probe", "color") != "rgb(1, 2, 3)"
    assert v.console_errors == []


def test_accept_all_brings_back_each_css_fetch_in_place(visit: Any, site_url: str, site: TrackedSite) -> None:
    v: Visit = visit(base_url=site_url)
    site.hits.clear()
    v.goto("/")
    settle(v)
    assert site.tracker_hits() == []
    v.page.get_by_role("button", name="Accept all", exact=True).click()
    expect(v.page.locator("#cg-root .cg-b")).to_be_hidden()
    v.page.wait_for_function("() => getComputedStyle(document.getElementById('probe')).color === 'rgb(1, 2, 3)'")
    v.page.wait_for_function(
        "() => getComputedStyle(document.getElementById('attr')).backgroundImage.includes('/a.gif')"
    )
    v.page.wait_for_function(
        "() => getComputedStyle(document.getElementById('text')).backgroundImage.includes('/u.gif')"
    )
    settle(v)
    assert {(f"{ATTRIBUTE}.localhost", "/a.gif"), (f"{UNKNOWN}.localhost", "/u.gif"),
            (f"{IMPORTED}.localhost", "/imported.css")} <= set(site.tracker_hits())
    assert computed(v, "text", "color") == "rgb(4, 5, 6)"
    assert v.console_errors == []
