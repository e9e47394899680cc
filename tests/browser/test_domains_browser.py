"""One choice across subdomains (`[cookie] domain = "auto"`) and sister domains, in a real Chromium.

Chromium resolves every `*.localhost` name to loopback, and the Public Suffix List's default rule makes
`example.localhost` the registrable domain of `www.example.localhost`: Chromium accepts a cookie scoped to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from consent_gateway.config import CookieConfig
from tests.servers import ServerThread

from .conftest import SECRET_KEYS, Visit, gateway_config, serve
from .test_banner_browser import FR, HOME_ANALYTICS, button, dialog, settle, wait_loaded

pytestmark = pytest.mark.browser

Open = Callable[..., Visit]


@pytest.fixture(scope="module")
def auto_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The demo site behind a gateway whose consent cookie is scoped with `domain = "auto"`."""
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway

    config = gateway_config(tmp_path_factory.mktemp("subdomains"))
    config = replace(config, cookie=replace(CookieConfig(), domain="auto"))
    site = build_demo_site()
    with serve(bypass_for_vendor_hosts(ConsentGateway(site, config, secret_keys=SECRET_KEYS), site)) as url:
        yield int(urlsplit(url).port or 0)


def on(v: Visit, host: str, port: int, path: str = "/") -> None:
    v.base_url = f"http://{host}:{port}"
    v.goto(path)


def test_a_choice_on_www_holds_on_shop_and_not_on_another_domain(visit: Open, auto_port: int) -> None:
    v = visit()
    on(v, "www.example.localhost", auto_port)
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    (cookie,) = [c for c in v.context.cookies() if c["name"] == "cg_consent"]
    assert cookie["domain"] == ".example.localhost" and cookie["httpOnly"]

    on(v, "shop.example.localhost", auto_port)
    wait_loaded(v, HOME_ANALYTICS)  # the server sent the trackers as they are: the choice holds
    assert not dialog(v, ".cg-b").is_visible()

    on(v, "www.other.localhost", auto_port)
    settle(v)
    assert button(v, FR["accept"]).is_visible()  # another registrable domain: asked again
    assert v.vendors_loaded() == set()


def test_withdrawal_on_shop_withdraws_on_www_too(visit: Open, auto_port: int) -> None:
    v = visit()
    on(v, "www.example.localhost", auto_port)
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    on(v, "shop.example.localhost", auto_port)
    button(v, FR["reopen"]).click()
    with v.page.expect_navigation():
        button(v, FR["withdraw"]).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    assert [c for c in v.context.cookies() if c["name"] == "cg_consent"] == []
    on(v, "www.example.localhost", auto_port)
    settle(v)
    expect(button(v, FR["accept"])).to_be_visible()
    assert v.vendors_loaded() == set()


def test_a_host_only_copy_left_from_before_auto_is_repaired(visit: Open, auto_port: int, tmp_path: Path) -> None:
    """A refusal kept host-only on shop. (set before "auto"), then a newer acceptance made on www.: shop.
    follows the newer one and the browser is left with a single consent cookie."""
    v = visit()
    on(v, "shop.example.localhost", auto_port)
    button(v, FR["reject"]).click()
    expect(dialog(v, ".cg-b")).to_be_hidden()
    (refusal,) = [c for c in v.context.cookies() if c["name"] == "cg_consent"]
    # as a gateway without "auto" would have left it: the same value, host-only
    v.context.clear_cookies()
    v.context.add_cookies([{**refusal, "domain": "shop.example.localhost"}])
    v.page.wait_for_timeout(1100)  # a newer choice: signatures count whole seconds
    on(v, "www.example.localhost", auto_port)
    button(v, FR["accept"]).click()
    wait_loaded(v, HOME_ANALYTICS)
    assert len([c for c in v.context.cookies() if c["name"] == "cg_consent"]) == 2

    on(v, "shop.example.localhost", auto_port)
    wait_loaded(v, HOME_ANALYTICS)  # the newest valid copy wins
    left = [c for c in v.context.cookies() if c["name"] == "cg_consent"]
    assert [c["domain"] for c in left] == [".example.localhost"]


# -- sister domains: two gateway instances, two registrable domains -------------------------------------

ORIGIN, SISTER = "www.example.localhost", "www.sister.localhost"


@pytest.fixture(scope="module")
def sister_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """Two gateways in front of the demo site, on their own ports and logs, each listing both domains."""
    from consent_gateway.config import ConsentDomain
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import free_port

    ports = free_port(), free_port()
    domains = tuple(
        ConsentDomain(sync_url=f"http://{host}:{port}/_consent/sync")
        for host, port in zip((ORIGIN, SISTER), ports, strict=True)
    )
    servers = []
    for name, port in zip(("origin", "sister"), ports, strict=True):
        config = replace(gateway_config(tmp_path_factory.mktemp(name)), consent_domains=domains)
        site = build_demo_site()
        app = bypass_for_vendor_hosts(ConsentGateway(site, config, secret_keys=SECRET_KEYS), site)
        servers.append(ServerThread(app, port=port))
    with servers[0], servers[1]:
        yield ports


def test_a_choice_is_carried_to_the_sister_domain_and_withdrawn_from_there(
    visit: Open, sister_ports: tuple[int, int]
) -> None:
    origin_port, sister_port = sister_ports
    v = visit()
    on(v, ORIGIN, origin_port, "/blog")
    # the banner goes through the sister's sync route and comes back to the page, top-level all the way
    with v.page.expect_navigation(url=f"http://{ORIGIN}:{origin_port}/blog"):
        button(v, FR["accept"]).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    assert any(url.startswith(f"http://{SISTER}:{sister_port}/_consent/sync?token=") for url in v.requests)
    wait_loaded(v, {"google-analytics"})
    cookies = {c["domain"]: c for c in v.context.cookies() if c["name"] == "cg_consent"}
    assert set(cookies) == {ORIGIN, SISTER}  # each domain's own first-party cookie, host-only here
    assert all(c["httpOnly"] for c in cookies.values())

    on(v, SISTER, sister_port)
    wait_loaded(v, HOME_ANALYTICS)  # the sister's pages follow the choice
    assert not dialog(v, ".cg-b").is_visible()

    # one withdrawal, on the sister, withdraws on the origin too
    button(v, FR["reopen"]).click()
    with v.page.expect_navigation(url=f"http://{SISTER}:{sister_port}/"):
        button(v, FR["withdraw"]).click()
    v.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")
    assert [c for c in v.context.cookies() if c["name"] == "cg_consent"] == []
    on(v, ORIGIN, origin_port)
    settle(v)
    expect(button(v, FR["accept"])).to_be_visible()
    assert v.vendors_loaded() == set()
    assert v.console_errors == []
