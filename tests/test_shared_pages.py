"""`[gateway] html_cache = "shared"`: the same HTML bytes for every visitor, the state in a readable cookie."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import Config, CSPConfig
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

GTAG = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-TEST"></script>'
PIXEL = '<img src="https://www.facebook.com/tr?id=1&ev=PageView" alt="">'
PAGE = f"<!doctype html><html lang=en><head><title>t</title>{GTAG}</head><body><p>Hi</p>{PIXEL}</body></html>"
SITE_CACHING = {
    "Cache-Control": "public, max-age=600, s-maxage=3600",
    "Surrogate-Control": "max-age=86400",
    "CDN-Cache-Control": "max-age=86400",
    "Vary": "Accept-Encoding",
}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
STATE = "cg_consent_state"


def cached_page(request: Request) -> Response:
    return HTMLResponse(PAGE, headers=SITE_CACHING)


def page_setting_cookies(request: Request) -> Response:
    response = HTMLResponse(PAGE, headers=SITE_CACHING)
    response.set_cookie("_ga", "GA1.1.123.456")
    return response


def site() -> Starlette:
    return Starlette(
        routes=[
            Route("/", cached_page),
            Route("/login", page_setting_cookies),
            Route("/logo.txt", lambda r: PlainTextResponse("logo", headers=SITE_CACHING)),
        ]
    )


def shared(config: Config, **gateway: Any) -> Config:
    return replace(config, gateway=replace(config.gateway, html_cache="shared", **gateway))


@pytest.fixture
def shared_config(config: Config) -> Config:
    return shared(config)


class Browser:
    """One visitor's cookie jar on the shared test client (one client: the gateway starts once)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookies: Any = {}

    def request(self, method: str, path: str, **options: Any) -> Any:
        self.client.cookies = self.cookies
        try:
            return self.client.request(method, path, **options)
        finally:
            self.cookies = self.client.cookies

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def choose(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/_consent/choices", json=body, headers=SAME_ORIGIN)


@contextmanager
def browsers(config: Config) -> Iterator[Callable[[], Browser]]:
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(gateway, headers={"Accept-Encoding": "identity"}) as client:
        yield lambda: Browser(client)


@pytest.fixture
def new_browser(shared_config: Config) -> Iterator[Callable[[], Browser]]:
    with browsers(shared_config) as new:
        yield new


@pytest.fixture
def visitors(new_browser: Callable[[], Browser]) -> tuple[Browser, Browser]:
    """Two browsers on one gateway: the first grants analytics, the second refuses everything."""
    granting, refusing = new_browser(), new_browser()
    assert granting.choose({"choices": {"analytics": True}}).is_success
    assert refusing.choose({"action": "reject_all"}).is_success
    return granting, refusing


def state_cookie(response: Any) -> tuple[dict[str, Any] | None, str]:
    """The state cookie a response sets: its decoded value (None when it expires it) and its attributes."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == STATE:
            value, _, attributes = rest.partition(";")
            expired = "max-age=0" in attributes.lower() or not value.strip('"')
            return (None if expired else json.loads(unquote(value))), attributes.lower()
    raise AssertionError(f"no {STATE} cookie set: {response.headers.get_list('set-cookie')}")


def test_every_visitor_gets_the_same_bytes_with_every_tracker_held(
    new_browser: Callable[[], Browser], visitors: tuple[Browser, Browser]
) -> None:
    pages = [browser.get("/") for browser in (*visitors, new_browser())]
    assert pages[0].content == pages[1].content == pages[2].content
    body = pages[0].text
    assert GTAG not in body and 'data-cg-src="https://www.googletagmanager.com/gtag/js?id=G-TEST"' in body
    assert ' src="https://www.facebook.com/tr' not in body
    # no visitor's state in the page: the reader script takes it from the state cookie
    assert '"shared":"cg_consent_state"' in body and '"consent_id":null' in body and '"choices"' not in body
    assert body.index("/banner-shared.js") < body.index("/banner.js")


def test_the_sites_caching_headers_stand(visitors: tuple[Browser, Browser]) -> None:
    for client in visitors:
        response = client.get("/")
        assert response.headers["cache-control"] == SITE_CACHING["Cache-Control"]
        assert response.headers["surrogate-control"] == SITE_CACHING["Surrogate-Control"]
        assert response.headers["cdn-cache-control"] == SITE_CACHING["CDN-Cache-Control"]
        assert "cookie" not in response.headers["vary"].lower()
        assert "set-cookie" not in response.headers


def test_a_choice_writes_the_readable_copy_beside_the_signed_cookie(
    new_browser: Callable[[], Browser],
) -> None:
    visitor = new_browser()
    response = visitor.choose({"choices": {"analytics": True}})
    state, attributes = state_cookie(response)
    assert state is not None
    assert state["id"] == response.json()["consent_id"]
    assert state["state"]["explicit"] is True
    assert state["state"]["choices"]["analytics"] is True and state["state"]["choices"]["marketing"] is False
    assert "httponly" not in attributes  # the banner reads it
    assert f"max-age={395 * 24 * 3600}" in attributes and "path=/" in attributes

    withdrawn = visitor.request("DELETE", "/_consent/choices", headers=SAME_ORIGIN)
    assert state_cookie(withdrawn)[0] is None
    assert STATE not in visitor.cookies


def test_a_page_that_sets_the_sites_own_cookies_is_never_shared(visitors: tuple[Browser, Browser]) -> None:
    granting, refusing = visitors
    kept = granting.get("/login")
    assert "_ga=" in kept.headers.get("set-cookie", "")
    dropped = refusing.get("/login")
    assert "_ga=" not in dropped.headers.get("set-cookie", "")
    for response in (kept, dropped):
        cache_control = response.headers["cache-control"]
        assert cache_control.startswith("private") and "public" not in cache_control and "s-maxage" not in cache_control
        assert "surrogate-control" not in response.headers and "cdn-cache-control" not in response.headers


def test_a_copy_out_of_step_is_rewritten_on_a_private_page_and_never_grants(
    new_browser: Callable[[], Browser],
) -> None:
    visitor = new_browser()
    visitor.choose({"action": "accept_all"})
    expected = visitor.cookies[STATE]
    visitor.cookies.delete(STATE)
    repaired = visitor.get("/")
    assert unquote(repaired.cookies[STATE]) == unquote(expected)
    assert repaired.headers["cache-control"].startswith("private")
    in_step = visitor.get("/")
    assert "set-cookie" not in in_step.headers and in_step.headers["cache-control"] == SITE_CACHING["Cache-Control"]

    forger = new_browser()
    forged = json.dumps({"state": {"explicit": True, "choices": {"analytics": True, "marketing": True}}})
    forger.cookies[STATE] = forged
    response = forger.get("/login")
    assert state_cookie(response)[0] is None  # a visitor who chose nothing has no copy
    assert "_ga=" not in response.headers.get("set-cookie", "")  # the server judges by the signed cookie
    assert response.headers["cache-control"].startswith("private")


def test_assets_keep_their_caching(visitors: tuple[Browser, Browser]) -> None:
    assert visitors[0].get("/logo.txt").headers["cache-control"] == SITE_CACHING["Cache-Control"]


def test_the_csp_backstop_is_the_same_for_all_and_allows_the_listed_vendors(config: Config) -> None:
    listing = replace(shared(config), banner=replace(config.banner, vendors=("google-analytics", "meta-pixel")))
    with browsers(listing) as new:
        granting, undecided = new(), new()
        granting.choose({"action": "accept_all"})
        pages = [visitor.get("/") for visitor in (granting, undecided)]
    policies = {page.headers["content-security-policy-report-only"] for page in pages}
    assert len(policies) == 1
    (policy,) = policies
    assert "*.googletagmanager.com" in policy and "facebook" in policy
    assert "hotjar" not in policy  # a vendor the site does not list stays out, for every visitor


def test_private_mode_keeps_cdn_headers_off_a_personal_page(config: Config) -> None:
    with browsers(config) as new:
        response = new().get("/")
    assert response.headers["cache-control"].startswith("private")
    assert "surrogate-control" not in response.headers and "cdn-cache-control" not in response.headers
    assert "Cookie" in response.headers["vary"]


def test_enforce_mode_in_shared_pages_reloads_nothing_and_keeps_unlisted_hosts_out(config: Config) -> None:
    enforcing = replace(
        shared(config),
        csp=replace(CSPConfig(), mode="enforce"),
        banner=replace(config.banner, vendors=("google-analytics",)),
    )
    with browsers(enforcing) as new:
        response = new().get("/")
    policy = response.headers["content-security-policy"]
    assert "*.googletagmanager.com" in policy and "facebook" not in policy
    assert '"reload"' not in response.text  # the policy already allows what the banner may bring back
