"""The owner's loop in a real Chromium: browse the demo, find its unclassified third party in the dashboard's
inventory, classify it in one step, and read it in the published cookie declaration — while the next page
already holds it under its new category, without a restart. And the enforcement page: a tracker a script
injects after load, blocked by the CSP backstop, shows there as loaded without consent."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import expect

from consent_gateway.config import AdminConfig, AdminUser, Config, CSPConfig, InventoryConfig

from .conftest import SECRET_KEYS, Visit, gateway_config, serve
from .test_csp_browser import TRACKER_HOST, _site, _tracker_app

pytestmark = pytest.mark.browser

PASSWORD = "a long passphrase for the privacy officer"
#: Set to write docs/screenshots/admin-inventory.png and cookie-declaration-fr.png (read at import: the test
#: environment is cleaned later).
UPDATE_SCREENSHOTS = bool(os.environ.get("CONSENT_GATEWAY_UPDATE_SCREENSHOTS"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDGET_HOST = "widgets.meteo-quartier.net.localhost"  # the demo's stand-in for a host no catalog knows


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo behind the gateway as `consent-gateway demo` serves it, with a privacy officer and an
    inventory flushed every 0.2 s (10 s by default)."""
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway

    config = with_officer(gateway_config(Path(tmp_path_factory.mktemp("inventory-browser"))))
    site = build_demo_site()
    with serve(bypass_for_vendor_hosts(ConsentGateway(site, config, secret_keys=SECRET_KEYS), site)) as url:
        yield url


def with_officer(config: Config) -> Config:
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return replace(
        config,
        admin=replace(AdminConfig(), users=(AdminUser("dpo", hasher.hash(PASSWORD), "privacy-officer"),)),
        inventory=replace(InventoryConfig(), flush_interval_seconds=0.2),
    )


def log_in(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_label("User name").fill("dpo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def held_category(page: Any) -> str | None:
    value = page.locator(f'script[data-cg-src*="{WIDGET_HOST}"]').first.get_attribute("data-category")
    return None if value is None else str(value)


def test_a_third_party_seen_while_browsing_is_classified_and_declared(
    visit: Callable[..., Visit], demo_url: str
) -> None:
    visitor = visit(base_url=demo_url, locale="fr-FR")
    visitor.goto("/blog")
    assert held_category(visitor.page) == "unclassified"  # held back before consent, nobody classified it
    assert not any(WIDGET_HOST in url for url in visitor.requests)

    officer = visit(base_url=demo_url, locale="en-US")
    page = officer.page
    log_in(page, f"{demo_url}/_consent/admin/inventory")
    expect(page.get_by_role("heading", name="What the site uses")).to_be_visible()
    row = page.locator(f'tr[data-name="{WIDGET_HOST}"]')
    for _ in range(50):  # the visitor's page reaches the store with the next flush (0.2 s)
        if row.count():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(row).to_contain_text("unclassified")
    expect(row).to_contain_text("/blog")  # the page it was seen on

    row.locator("summary", has_text="Classify").click()
    row.get_by_label("a new vendor's").check()
    row.get_by_label("New vendor's name").fill("Météo du quartier")
    row.get_by_label("New vendor's category").select_option("preferences")
    row.get_by_label("New vendor's privacy policy URL").fill("https://meteo-quartier.example/confidentialite")
    if UPDATE_SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "admin-inventory.png"), full_page=True)
    row.get_by_role("button", name="Classify").click()
    expect(page.get_by_role("status")).to_contain_text(f"host:{WIDGET_HOST}")
    row = page.locator(f'tr[data-name="{WIDGET_HOST}"]')
    expect(row).to_contain_text("Météo du quartier")
    expect(row).to_contain_text("Preferences")

    # the published declaration, in the visitor's language, names it with its policy and host
    visitor.page.goto(f"{demo_url}/_consent/cookies")
    declaration = visitor.page
    expect(declaration.get_by_role("heading", level=1)).to_have_text("Cookies et traceurs utilisés par ce site")
    vendor = declaration.locator("#category-preferences article", has_text="Météo du quartier")
    if UPDATE_SCREENSHOTS:
        vendor.scroll_into_view_if_needed()
        declaration.screenshot(path=str(SCREENSHOTS / "cookie-declaration-fr.png"))
    expect(vendor).to_contain_text(WIDGET_HOST)
    expect(vendor.get_by_role("link", name="Politique de confidentialité")).to_have_attribute(
        "href", "https://meteo-quartier.example/confidentialite"
    )
    # and the next page, on this same running gateway, holds the widget under its new category
    visitor.goto("/blog")
    assert held_category(visitor.page) == "preferences"
    assert visitor.console_errors == [] and officer.console_errors == []


@pytest.fixture(scope="module")
def enforced_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A shop whose inline "tag manager" injects the Meta pixel after load from a split URL, behind the gateway
    in enforce mode (the tracker answers on a port of its own)."""
    from consent_gateway.middleware import ConsentGateway

    with serve(_tracker_app()) as tracker_url:
        config = gateway_config(Path(tmp_path_factory.mktemp("enforcement-browser")), default_language="en")
        config = with_officer(replace(config, csp=CSPConfig(mode="enforce")))
        gateway = ConsentGateway(_site(int(tracker_url.rsplit(":", 1)[1])), config, secret_keys=SECRET_KEYS)
        with serve(gateway) as url:
            yield url


def test_a_tracker_injected_after_load_shows_on_the_enforcement_page(
    visit: Callable[..., Visit], enforced_shop: str
) -> None:
    visitor = visit(base_url=enforced_shop)
    visitor.goto("/shop/item?ref=newsletter")
    officer = visit(base_url=enforced_shop)
    page = officer.page
    log_in(page, f"{enforced_shop}/_consent/admin/enforcement")
    expect(page.get_by_role("heading", name="Loaded without consent")).to_be_visible()
    row = page.locator("#violations tr", has_text=TRACKER_HOST)
    for _ in range(50):  # the browser's report, then the next flush (0.2 s)
        if row.count():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(row).to_contain_text("Meta Pixel")
    expect(row).to_contain_text("/shop/item")  # the page, without its query string
    expect(row).to_contain_text("script-src-elem")
    expect(row).to_contain_text("none")  # the visitor had made no choice
    expect(page.get_by_text("The browser blocked each of them.")).to_be_visible()


AXE_RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                 .map((x) => ({id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target)}))"""


def test_axe_core_finds_no_violation_on_the_declaration_and_the_inventory(
    visit: Callable[..., Visit], demo_url: str, axe_source: str
) -> None:
    # the pages' policies allow no script: axe is injected with the policy bypassed, for the test only
    visitor = visit(base_url=demo_url, bypass_csp=True)
    visitor.goto("/blog")
    for lang in ("fr", "en"):
        visitor.page.goto(f"{demo_url}/_consent/cookies?lang={lang}")
        assert visitor.page.locator("html").get_attribute("lang") == lang
        visitor.page.add_script_tag(content=axe_source)
        found = visitor.page.evaluate(AXE_RUN)
        assert found == [], (lang, found)
    officer = visit(base_url=demo_url, bypass_csp=True)
    log_in(officer.page, f"{demo_url}/_consent/admin/inventory")
    expect(officer.page.get_by_role("heading", name="What the site uses")).to_be_visible()
    officer.page.locator("details").first.evaluate("(d) => { d.open = true; }")  # a form unfolded
    for path in ("/_consent/admin/inventory", "/_consent/admin/enforcement"):
        if path.endswith("enforcement"):
            officer.page.goto(demo_url + path)
        officer.page.add_script_tag(content=axe_source)
        assert officer.page.evaluate(AXE_RUN) == [], path
