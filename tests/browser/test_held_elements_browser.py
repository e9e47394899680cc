"""Every kind of element that fetches, in a real Chromium behind the real gateway: a tracker's stylesheet, a
video poster, a link's ping and an inline iframe document reach nobody before consent, and all come back
when the visitor accepts everything, without a reload.

The trackers are served on loopback under their real host names (``www.google-analytics.com.localhost``),
by the same bare site, which records every request it receives: what "reached the tracker host" means here
is what that server saw, whatever the browser reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from consent_gateway._types import Receive, Scope, Send

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
       b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
#: the tracker hosts of the page, as the catalog knows them (each under .localhost on the test's port)
STYLES = "static.hotjar.com"
POSTER = "i.ytimg.com"
PING = "www.google-analytics.com"
FRAME_PIXEL = "www.facebook.com"
LONG_PIXEL = "ct.pinterest.com"


def page(port: str) -> bytes:
    def at(host: str) -> str:
        return f"http://{host}.localhost:{port}"

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Every element</title>
<link rel="stylesheet" href="{at(STYLES)}/c/held.css">
</head><body>
<h1 id="probe">Held elements</h1>
<video id="video" width="64" height="48" poster="{at(POSTER)}/vi/x/poster.gif"></video>
<iframe id="inline" width="64" height="48"
  srcdoc="<p>Inside</p><img src='{at(FRAME_PIXEL)}/tr?id=1&amp;ev=srcdoc'>"></iframe>
<p><a id="pinged" href="/next" ping="{at(PING)}/collect?t=ping">Next page</a></p>
</body></html>
""".encode()


def long_tag_page(port: str) -> bytes:
    """A tracker pixel in a tag longer than the rewriter's buffer: made inert unread (data-cg-bailout)."""
    pad = "a" * 70_000
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>A long tag</title></head><body>
<img id="long" data-pad="{pad}" width="1" height="1" src="http://{LONG_PIXEL}.localhost:{port}/tr?id=1&amp;ev=long">
<p>after the long tag</p>
</body></html>
""".encode()


#: (host, port, path) → (body, media type): what a test site answers.
Route = Callable[[str, str, str], tuple[bytes, bytes]]


class TrackedSite:
    """The site and its trackers on one port, recording (host, path) of every request."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.hits: list[tuple[str, str]] = []

    def tracker_hits(self) -> list[tuple[str, str]]:
        return [(host, path) for host, path in self.hits if host.endswith(".localhost")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host, _, port = dict(scope["headers"]).get(b"host", b"").decode().rpartition(":")
        self.hits.append((host, scope["path"]))
        body, media = self.route(host, port, scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]})
        await send({"type": "http.response.body", "body": body})


def held_elements_site(host: str, port: str, path: str) -> tuple[bytes, bytes]:
    if host.endswith(".localhost"):
        if path.endswith(".css"):
            return b"#probe { color: rgb(1, 2, 3); }", b"text/css"
        if path == "/collect":
            return b"", b"text/plain"
        return GIF, b"image/gif"
    if path == "/":
        return page(port), b"text/html; charset=utf-8"
    if path == "/long":
        return long_tag_page(port), b"text/html; charset=utf-8"
    return b"<!DOCTYPE html><title>Next</title><p>next page</p>", b"text/html; charset=utf-8"


@pytest.fixture(scope="module")
def site() -> TrackedSite:
    return TrackedSite(held_elements_site)


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory, site: TrackedSite) -> Iterator[str]:
    from consent_gateway.middleware import ConsentGateway

    config = gateway_config(tmp_path_factory.mktemp("held-elements-data"))
    with serve(ConsentGateway(site, config, secret_keys=SECRET_KEYS)) as url:
        yield url


def settle(v: Visit) -> None:
    """Loaded, then a quiet moment for late requests ("networkidle" waits too long on a busy machine)."""
    v.page.wait_for_load_state("load")
    v.page.wait_for_timeout(500)


def probe_color(v: Visit) -> Any:
    return v.page.evaluate("() => getComputedStyle(document.getElementById('probe')).color")


def test_held_elements_reach_no_tracker_before_consent(visit: Any, site_url: str, site: TrackedSite) -> None:
    v: Visit = visit(base_url=site_url)
    site.hits.clear()
    v.goto("/")
    settle(v)
    assert probe_color(v) != "rgb(1, 2, 3)"
    v.page.click("#pinged")  # following the link would send its ping
    v.page.wait_for_url("**/next")
    settle(v)
    assert ("127.0.0.1", "/next") in site.hits
    assert site.tracker_hits() == []


def test_accept_all_brings_back_stylesheet_poster_srcdoc_and_ping(visit: Any, site_url: str,
                                                                  site: TrackedSite) -> None:
    v: Visit = visit(base_url=site_url)
    site.hits.clear()
    v.goto("/")
    settle(v)
    assert site.tracker_hits() == []
    v.page.get_by_role("button", name="Accept all", exact=True).click()
    expect(v.page.locator("#cg-root .cg-b")).to_be_hidden()
    # Without a reload: the same document now has its stylesheet, poster and inline frame's pixel.
    v.page.wait_for_function("() => getComputedStyle(document.getElementById('probe')).color === 'rgb(1, 2, 3)'")
    v.page.wait_for_function("() => document.getElementById('video').poster.includes('poster.gif')")
    v.page.wait_for_function(
        "() => { const d = document.getElementById('inline').contentDocument;"
        " return d && d.images.length === 1 && d.images[0].complete && d.images[0].naturalWidth === 1; }"
    )
    settle(v)
    hosts = {host for host, _ in site.tracker_hits()}
    assert {f"{STYLES}.localhost", f"{POSTER}.localhost", f"{FRAME_PIXEL}.localhost"} <= hosts
    assert f"{PING}.localhost" not in hosts  # a ping is only sent when the link is followed
    v.page.click("#pinged")
    v.page.wait_for_url("**/next")
    for _ in range(50):  # the ping is sent alongside the navigation, not before it
        if (f"{PING}.localhost", "/collect") in site.tracker_hits():
            break
        v.page.wait_for_timeout(100)
    assert (f"{PING}.localhost", "/collect") in site.tracker_hits()
    assert v.console_errors == []


def test_a_tag_too_long_to_read_comes_back_after_accept_all(visit: Any, site_url: str, site: TrackedSite) -> None:
    """A bail-out hides the tag's own URL (the inert attributes come first), so it cannot come back in place;
    once the visitor allowed everything, the gateway serves the tag as it is from the next page view on:
    not broken for good."""
    v: Visit = visit(base_url=site_url)
    site.hits.clear()
    v.goto("/long")
    settle(v)
    assert v.page.locator("#long").get_attribute("data-cg-bailout") == ""
    assert site.tracker_hits() == []
    v.page.get_by_role("button", name="Accept all", exact=True).click()
    expect(v.page.locator("#cg-root .cg-b")).to_be_hidden()
    v.goto("/long")  # the next view of the page
    v.page.wait_for_function(
        "() => { const i = document.getElementById('long');"
        " return i && !i.hasAttribute('data-cg-bailout') && i.complete && i.naturalWidth === 1; }"
    )
    assert (f"{LONG_PIXEL}.localhost", "/tr") in site.tracker_hits()
    assert v.page.get_by_text("after the long tag").is_visible()
    assert v.console_errors == []
