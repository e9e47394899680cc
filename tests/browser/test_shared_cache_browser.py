"""Shared-cacheable HTML (`[gateway] html_cache = "shared"`) in a real Chromium, through a real caching proxy.

nginx with `proxy_cache`, keyed by URL only as a CDN keys a page, stands in front of the gateway, in front
of the demo site made cacheable. Two visitors with opposite choices are served the same cached bytes; each
sees their own state: the consenting one's trackers come back in the browser, the other's never load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from consent_gateway._types import Message, Receive, Scope, Send
from tests.conftest import missing
from tests.servers import CachingProxy, nginx_path

from .conftest import SECRET_KEYS, Visit, gateway_config, serve
from .test_banner_browser import FR, HOME_ANALYTICS, HOME_MARKETING, button, dialog, settle, wait_loaded

pytestmark = pytest.mark.browser

Open = Callable[..., Visit]
GTM_HOST = "www.googletagmanager.com.localhost"


def cacheable(app: Any) -> Any:
    """The demo as a site that lets caches keep its pages: `Cache-Control: public` on the site's own HTML and
    no `Set-Cookie` there (the demo's server-side cookies would make every page private)."""

    async def site(scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope.get("headers", ())).get(b"host", b"")
        if scope["type"] != "http" or not host.startswith(b"localhost") or scope["path"].startswith("/_"):
            await app(scope, receive, send)
            return

        async def send_cacheable(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k not in (b"set-cookie", b"cache-control")]
                message = {**message, "headers": [*headers, (b"cache-control", b"public, max-age=300")]}
            await send(message)

        await app(scope, receive, send_cacheable)

    return site


@pytest.fixture(scope="module")
def cached_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The caching proxy's URL, in front of the gateway (shared HTML) in front of the cacheable demo."""
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway

    nginx = nginx_path()
    if nginx is None:
        missing("nginx (Debian: apt-get install nginx-light), the caching proxy of the shared-HTML test")
    assert nginx is not None
    config = gateway_config(tmp_path_factory.mktemp("shared-consent-data"))
    config = replace(config, gateway=replace(config.gateway, html_cache="shared"))
    site = build_demo_site()
    gateway = bypass_for_vendor_hosts(ConsentGateway(cacheable(site), config, secret_keys=SECRET_KEYS), site)
    with serve(gateway) as upstream, CachingProxy(nginx, upstream, tmp_path_factory.mktemp("nginx")) as proxy:
        yield proxy.url


def open_page(v: Visit, path: str) -> str:
    """Navigate, wait for the banner, and say whether the caching proxy served the page (HIT) or not."""
    response = v.page.goto(v.base_url + path)
    assert response is not None and response.ok
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    return str(response.header_value("x-cache-status"))


def test_visitors_with_opposite_choices_share_the_cached_page_and_keep_their_own_state(
    visit: Open, cached_site: str, artifacts: Path
) -> None:
    granting = visit(base_url=cached_site)
    assert open_page(granting, "/") == "MISS"
    settle(granting)
    assert granting.tracker_requests() == []  # nothing before consent
    button(granting, FR["accept"]).click()
    wait_loaded(granting, HOME_ANALYTICS | HOME_MARKETING)  # in place, as on a private page

    # The next view comes from the cache, the same bytes as for anyone: the banner reads this visitor's
    # state and brings the trackers back once the page is parsed.
    assert open_page(granting, "/") == "HIT"
    wait_loaded(granting, HOME_ANALYTICS | HOME_MARKETING)
    assert not dialog(granting, ".cg-b").is_visible()
    timing = granting.page.evaluate(
        """(host) => {
            const nav = performance.getEntriesByType('navigation')[0];
            const tag = performance.getEntriesByType('resource').find((e) => new URL(e.name).hostname === host);
            return {dom_content_loaded_ms: nav.domContentLoadedEventStart, first_revived_tag_ms: tag && tag.startTime};
        }""",
        GTM_HOST,
    )
    assert timing["first_revived_tag_ms"] is not None
    assert timing["first_revived_tag_ms"] >= timing["dom_content_loaded_ms"]  # held until the banner ran
    (artifacts / "shared-html-revival.json").write_text(json.dumps(timing, indent=1))

    refusing = visit(base_url=cached_site)
    assert open_page(refusing, "/") == "HIT"  # the page the other visitor's view put in the cache
    settle(refusing)
    expect(dialog(refusing, ".cg-b")).to_be_visible()  # no state leaked: this visitor is asked
    assert refusing.tracker_requests() == [] and refusing.vendors_loaded() == set()
    button(refusing, FR["reject"]).click()
    expect(dialog(refusing, ".cg-b")).to_be_hidden()
    assert open_page(refusing, "/") == "HIT"
    settle(refusing)
    assert not dialog(refusing, ".cg-b").is_visible()
    expect(button(refusing, FR["reopen"])).to_be_visible()
    assert refusing.tracker_requests() == [] and refusing.vendors_loaded() == set()
    assert granting.console_errors == [] and refusing.console_errors == []


@pytest.mark.parametrize(
    ("locale", "path", "accept"), [("fr-FR", "/en/", "Tout accepter"), ("en-US", "/", "Accept all")]
)
def test_a_shared_page_speaks_the_visitors_language(
    visit: Open, cached_site: str, locale: str, path: str, accept: str
) -> None:
    """The page is the same for every language (no Vary: Accept-Language): the browser picks the banner's."""
    v = visit(base_url=cached_site, locale=locale)
    open_page(v, path)
    expect(button(v, accept)).to_be_visible()
