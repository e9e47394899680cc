"""Third parties nobody classified, in a real Chromium behind the real gateway.

The page is served as ``shop.localhost`` (Chromium resolves every ``*.localhost`` name to loopback), so
``cdn.shop.localhost`` is the same site and ``widget.localhost`` a third party nobody classified. What a
visitor sees: the preferences name the held hosts in a section of their own, "accept all" brings them back
without a reload, "reject all" keeps them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

Open = Callable[..., Visit]
SECTION_EN = "Other services not yet described by this site"


def _third_party_app() -> Starlette:
    """Answers for every third-party and CDN host: a script that says it ran."""

    async def script(request: Request) -> Response:
        name = request.path_params["name"]
        body = f"(window.cgRan = window.cgRan || []).push({name!r});"
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    async def frame(request: Request) -> Response:
        return HTMLResponse("<!doctype html><p>the widget's frame</p>", headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/{name}.js", script), Route("/frame", frame)])


#: how the page carries the unknown widget: held by the gateway, marked by hand, not at all, or as an iframe
PAGES = ("plain", "by-hand", "none", "frame")


def _site(third_party_port: int, page_kind: str) -> Starlette:
    widget = f"http://widget.localhost:{third_party_port}/widget.js"
    cdn = f"http://cdn.shop.localhost:{third_party_port}/cdn.js"
    held = {
        "plain": f'<script src="{widget}"></script>',
        "by-hand": f'<script type="text/plain" data-category="unclassified" data-cg-vendor="unclassified" '
        f'data-cg-src="{widget}"></script>',
        "none": "",
        "frame": f'<iframe id="widget" width="300" height="120" src="http://widget.localhost:{third_party_port}/frame">'
        "</iframe>",
    }[page_kind]

    async def page(request: Request) -> Response:
        return HTMLResponse(
            f'<!doctype html><html lang="en"><head><title>Shop</title></head><body><h1>Shop</h1>'
            f'<script src="{cdn}"></script>{held}<p>Welcome</p></body></html>'
        )

    return Starlette(routes=[Route("/", page)])


@pytest.fixture(scope="module")
def third_party_port() -> Iterator[int]:
    with serve(_third_party_app()) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, third_party_port: int) -> Iterator[Callable[[str], str]]:
    """``shop(page_kind)``: the base URL of a shop page behind the gateway, as ``shop.localhost``."""
    from consent_gateway.middleware import ConsentGateway

    urls: dict[str, str] = {}
    with ExitStack() as stack:
        for page_kind in PAGES:
            config = gateway_config(Path(tmp_path_factory.mktemp("unclassified-data")), default_language="en")
            gateway = ConsentGateway(_site(third_party_port, page_kind), config, secret_keys=SECRET_KEYS)
            urls[page_kind] = stack.enter_context(serve(gateway)).replace("127.0.0.1", "shop.localhost")
        yield urls.__getitem__


def ran(v: Visit) -> list[str]:
    return list(v.page.evaluate("() => window.cgRan || []"))


def section(v: Visit) -> Any:
    return v.page.locator("#cg-root section.cg-cat").filter(has_text=SECTION_EN)


@pytest.mark.parametrize("page_kind", ["plain", "by-hand"])
def test_preferences_name_the_held_hosts_and_accept_all_restores_them(
    visit: Open, shop: Any, page_kind: str
) -> None:
    v = visit(base_url=shop(page_kind))
    v.goto("/")
    v.page.wait_for_function("() => (window.cgRan || []).includes('cdn')")  # same site: never held
    assert ran(v) == ["cdn"]
    assert not any("widget.localhost" in url for url in v.requests)  # held before consent
    v.page.get_by_role("button", name="Customize", exact=True).click()
    expect(section(v)).to_be_visible()
    expect(section(v).locator(".cg-hosts")).to_have_text("widget.localhost")
    navigations = len(v.navigations)
    v.page.locator("#cg-root .cg-m").get_by_role("button", name="Accept all", exact=True).click()
    v.page.wait_for_function("() => (window.cgRan || []).includes('widget')")
    assert len(v.navigations) == navigations  # no reload
    assert v.console_errors == []


def test_reject_all_keeps_them_held(visit: Open, shop: Any) -> None:
    v = visit(base_url=shop("plain"))
    v.goto("/")
    v.page.get_by_role("button", name="Reject all", exact=True).click()
    v.page.wait_for_load_state("networkidle")
    v.page.wait_for_timeout(150)
    assert "widget" not in ran(v)
    assert not any("widget.localhost" in url for url in v.requests)


def test_no_section_without_unclassified_elements(visit: Open, shop: Any) -> None:
    v = visit(base_url=shop("none"))
    v.goto("/")
    v.page.get_by_role("button", name="Customize", exact=True).click()
    expect(v.page.locator("#cg-root .cg-m")).to_be_visible()
    expect(section(v)).to_be_hidden()


def test_the_demo_blog_names_its_weather_widget_and_accept_all_runs_it(visit: Open) -> None:
    v = visit()
    v.goto("/blog")
    assert not any("meteo-quartier" in url for url in v.requests)
    v.page.get_by_role("button", name="Personnaliser", exact=True).click()
    demo_section = v.page.locator("#cg-root section.cg-cat").filter(
        has_text="Autres services non encore décrits par ce site"
    )
    expect(demo_section.locator(".cg-hosts")).to_have_text("widgets.meteo-quartier.net.localhost")
    v.page.locator("#cg-root .cg-m").get_by_role("button", name="Tout accepter", exact=True).click()
    v.page.wait_for_function("() => (window.cgDemoLoaded || []).includes('unclassified')")


def test_a_held_iframe_of_an_unclassified_host_shows_a_placeholder_that_allows_it(visit: Open, shop: Any) -> None:
    v = visit(base_url=shop("frame"))
    v.goto("/")
    placeholder = v.page.get_by_role("region", name="widget.localhost")
    expect(placeholder).to_contain_text("This content is provided by widget.localhost")
    assert not any("widget.localhost" in url for url in v.requests)
    navigations = len(v.navigations)
    placeholder.get_by_role("button", name="Allow widget.localhost").click()
    v.page.wait_for_function(
        "() => { const f = document.getElementById('widget'); return !f.hidden && f.src.endsWith('/frame'); }"
    )
    expect(placeholder).to_have_count(0)
    for _ in range(50):
        if any("widget.localhost" in url and url.endswith("/frame") for url in v.requests):
            break
        v.page.wait_for_timeout(100)
    assert any("widget.localhost" in url and url.endswith("/frame") for url in v.requests)
    assert len(v.navigations) == navigations  # no reload
    # the grant is the category of every host nobody classified
    assert v.page.evaluate("() => window.consentGateway.acceptedCategory('unclassified')") is True
    # the report-only CSP backstop of a page served before the grant reports the frame, and blocks nothing
    assert [error for error in v.console_errors if "report-only" not in error] == []
