"""A real Chromium visiting the demo site through the real gateway, served by uvicorn on loopback.

The demo answers every third-party host itself (``www.googletagmanager.com.localhost:PORT``…); each
browser context records every request the page makes and aborts any request for a host that is not
loopback, so a test can state exactly which trackers were contacted and nothing ever leaves the machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from consent_gateway.catalog import URL_KINDS, Catalog
from consent_gateway.config import BannerConfig, Config, GatewayConfig, StoreConfig
from tests.conftest import missing
from tests.servers import CHROMIUM_ARGS, ServerThread

SECRET_KEYS = ["browser-test-signing-key-0123456789-abcdefghij"]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CATALOG = Catalog.builtin()
#: Vendor ids by category, from the built-in catalog the gateway uses.
CATEGORY_VENDORS: dict[str, set[str]] = {}
for _vendor in CATALOG.vendors.values():
    CATEGORY_VENDORS.setdefault(_vendor.category, set()).add(_vendor.id)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def vendor_of(url: str) -> str | None:
    """The catalog vendor a request URL belongs to, whatever the kind of request."""
    for kind in URL_KINDS:
        vendor = CATALOG.vendor_for_url(url, kind)
        if vendor is not None:
            return vendor.id
    return None


@dataclass
class Visit:
    """One browser context: its page, every request it made, and the console errors it logged."""

    context: Any
    page: Any
    base_url: str
    requests: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        # The banner shows once its stylesheet is in: wait for it rather than for a fixed time.
        self.page.wait_for_selector("#cg-root[data-cg-ready]", state="attached")

    def tracker_requests(self) -> list[str]:
        """Requests that went to a vendor: a third-party host, or a self-hosted tool the catalog knows."""
        return [url for url in self.requests if vendor_of(url) is not None or _is_third_party(url, self.base_url)]

    def vendors_contacted(self) -> set[str]:
        return {vendor for url in self.requests if (vendor := vendor_of(url)) is not None}

    def vendors_loaded(self) -> set[str]:
        """Vendor ids the demo's stand-in scripts and frames reported running (``window.cgDemoLoaded``)."""
        return set(self.page.evaluate("() => window.cgDemoLoaded || []"))

    def cookie_names(self) -> set[str]:
        return {cookie["name"] for cookie in self.context.cookies()}


def _is_third_party(url: str, base_url: str) -> bool:
    return urlsplit(url).hostname != urlsplit(base_url).hostname and urlsplit(url).scheme in ("http", "https")


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serves an ASGI app with uvicorn on a free loopback port, in a thread, for the duration."""
    with ServerThread(app) as server:
        yield server.url


def gateway_config(data: Path, **banner: Any) -> Config:
    """The built-in defaults with the consent log in ``data``, and ``banner`` changes to ``[banner]``."""
    return replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(data), instance_id="browser-tests"),
        store=StoreConfig(url=f"sqlite:///{data / 'consent.db'}"),
        banner=replace(BannerConfig(), **banner),
    )


@pytest.fixture(scope="package")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo site behind ``ConsentGateway``, as ``consent-gateway demo`` serves it."""
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway

    config = gateway_config(tmp_path_factory.mktemp("browser-consent-data"))
    site = build_demo_site()
    with serve(bypass_for_vendor_hosts(ConsentGateway(site, config, secret_keys=SECRET_KEYS), site)) as url:
        yield url


@pytest.fixture(scope="package")
def launch(chromium_path: str) -> Iterator[Callable[..., Any]]:
    """Launches Debian's Chromium (or ``CONSENT_GATEWAY_CHROMIUM``) with Playwright; options go to launch."""
    path = chromium_path
    from playwright.sync_api import sync_playwright

    browsers: list[Any] = []
    with sync_playwright() as playwright:

        def start(**options: Any) -> Any:
            browsers.append(playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, **options))
            return browsers[-1]

        yield start
        for browser in browsers:
            browser.close()


@pytest.fixture(scope="package")
def browser(launch: Callable[..., Any]) -> Any:
    return launch()


@pytest.fixture(scope="package")
def axe_source() -> str:
    if not AXE_JS.is_file():
        missing("axe-core (run `npm ci` at the repository root)")
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture
def visit(browser: Any, gateway_url: str) -> Iterator[Callable[..., Visit]]:
    """Opens a fresh browser context (no cookies) on the gateway; keyword arguments go to new_context
    (``base_url=`` points it at another server)."""
    yield from _visits(browser, gateway_url)


@pytest.fixture
def visit_with_bfcache(launch: Callable[..., Any], gateway_url: str) -> Iterator[Callable[..., Visit]]:
    """As ``visit``, in a Chromium that keeps the back/forward cache (Playwright turns it off by default).
    Request interception keeps pages out of that cache, so these contexts record requests without it."""
    yield from _visits(launch(ignore_default_args=["--disable-back-forward-cache"]), gateway_url, intercept=False)


def _visits(browser: Any, gateway_url: str, intercept: bool = True) -> Iterator[Callable[..., Visit]]:
    contexts: list[Any] = []

    def open_context(base_url: str = gateway_url, **options: Any) -> Visit:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        # A browser asking for a language the sites here do not offer (they offer fr and en): the banner then
        # speaks each page's own language. Tests of the visitor's language pass locale="fr-FR" or "en-US".
        options.setdefault("locale", "de-DE")
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        v = Visit(context, page, base_url)

        def route(r: Any) -> None:
            if is_loopback(urlsplit(r.request.url).hostname or ""):
                r.continue_()
            else:
                v.aborted.append(r.request.url)
                r.abort()

        if intercept:
            context.route("**/*", route)
        context.on("request", lambda request: v.requests.append(request.url))
        page.on("console", lambda m: v.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: v.console_errors.append(f"uncaught: {e}"))
        page.on("framenavigated", lambda f: v.navigations.append(f.url) if f == page.main_frame else None)
        return v

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
