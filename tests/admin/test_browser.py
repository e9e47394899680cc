"""A real Chromium logs in to the dashboard served by uvicorn and filters the event search; a French browser
gets the dashboard in French, switches it to English, and axe-core finds nothing wrong in either."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.conftest import missing
from tests.servers import CHROMIUM_ARGS, ServerThread

from .conftest import DPO_PASSWORD, PREFIX, VISITOR, make_events

pytestmark = pytest.mark.browser

#: Set to write docs/screenshots/admin-overview.png (read at import: the test environment is cleaned later).
UPDATE_SCREENSHOTS = bool(os.environ.get("CONSENT_GATEWAY_UPDATE_SCREENSHOTS"))
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "admin-overview.png"
SCREENSHOT_FR = SCREENSHOT.with_name("admin-overview-fr.png")
AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                 .map((x) => ({id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target)}))"""


@pytest.fixture
def served(admin_app: Starlette) -> Iterator[str]:
    with ServerThread(admin_app, lifespan="off") as server:
        yield server.url


def test_browser_logs_in_and_filters_the_event_search(served: str, chromium_path: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    events = make_events()
    german_desktops = [e for e in events if e.country == "DE" and e.device_type == "desktop"]
    assert 50 < len(german_desktops) < 100  # two pages, and a filter that really narrows
    foreign_requests: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: None if r.url.startswith(served) else foreign_requests.append(r.url))
            # Non-2xx answers (the failed login's 401) are logged as "Failed to load resource"; CSP
            # violations start with "Refused to".
            page.on("console", lambda m: console_errors.append(m.text) if "Refused" in m.text else None)

            page.goto(f"{served}{PREFIX}/events")
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            page.get_by_label("User name").fill("dpo")
            page.get_by_label("Password").fill("wrong password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
            page.get_by_label("Password").fill(DPO_PASSWORD)
            page.get_by_role("button", name="Log in").click()

            # Back where the login started, now signed in.
            expect(page.get_by_role("heading", name="Consent events")).to_be_visible()
            expect(page.locator("#result-count")).to_contain_text(f"{len(events)} matching events")
            page.get_by_label("Country").fill("de")
            page.get_by_label("Device").select_option("desktop")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("#result-count")).to_contain_text(f"{len(german_desktops)} matching events")
            assert "country=de" in page.url and "device=desktop" in page.url  # a shareable link
            expect(page.get_by_label("Country")).to_have_value("DE")
            rows = page.locator("table.events tbody tr")
            expect(rows).to_have_count(50)
            page.get_by_role("link", name="Next page").click()
            expect(rows).to_have_count(len(german_desktops) - 50)
            expect(page.get_by_role("link", name="Next page")).to_have_count(0)
            countries = rows.locator("td:nth-child(5)").all_inner_texts()
            devices = rows.locator("td:nth-child(7)").all_inner_texts()
            assert set(countries) == {"DE"} and set(devices) == {"desktop"}

            page.get_by_role("link", name="Overview").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            chart = page.get_by_role("img", name="Consent rate per category, last 30 days")
            expect(chart).to_be_visible()
            page.screenshot(path=str(SCREENSHOT if UPDATE_SCREENSHOTS else tmp_path / "overview.png"), full_page=True)

            page.get_by_role("button", name="Log out").click()
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            page.goto(f"{served}{PREFIX}/")
            expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        finally:
            browser.close()
    assert foreign_requests == []
    assert console_errors == []


@pytest.fixture
def axe_source() -> str:
    if not AXE_JS.is_file():
        missing("axe-core (run `npm ci` at the repository root)")
    return AXE_JS.read_text(encoding="utf-8")


def test_a_french_browser_works_in_french_switches_to_english_and_axe_finds_nothing(
    served: str, chromium_path: str, axe_source: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            # the pages' policy allows no script: axe is injected with it bypassed, for the test only
            context = browser.new_context(locale="fr-FR", bypass_csp=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(10_000)

            def axe_finds_nothing(where: str) -> None:
                page.add_script_tag(content=axe_source)
                assert page.evaluate(AXE_RUN) == [], where

            page.goto(f"{served}{PREFIX}/")
            expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
            assert page.locator("html").get_attribute("lang") == "fr"
            axe_finds_nothing("login")
            page.get_by_label("Nom d'utilisateur").fill("dpo")
            page.get_by_label("Mot de passe").fill(DPO_PASSWORD)
            page.get_by_role("button", name="Se connecter").click()

            expect(page.get_by_role("heading", name="Vue d'ensemble")).to_be_visible()
            chart = page.get_by_role("img", name="Taux de consentement par catégorie, 30 derniers jours")
            expect(chart).to_be_visible()
            axe_finds_nothing("overview")
            page.screenshot(path=str(SCREENSHOT_FR if UPDATE_SCREENSHOTS else tmp_path / "fr.png"), full_page=True)
            pages = {
                "/events": "Événements de consentement",
                f"/visitors/{VISITOR}": "Historique d'un visiteur",
                "/events/ev-visitor-0": "Événement de consentement",
                "/integrity": "Intégrité du journal des consentements",
                "/inventory": "Ce que le site utilise",
                "/export": "Exporter les événements de consentement",
                "/erase": "Effacer les données personnelles d'un visiteur",
            }
            for path, heading in pages.items():
                page.goto(f"{served}{PREFIX}{path}")
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
                assert page.locator("html").get_attribute("lang") == "fr", path
                axe_finds_nothing(path)

            # a search's errors, in French, then the switch: same page, in English, and it stays so
            page.goto(f"{served}{PREFIX}/events?since=hier&device=desktop")
            expect(page.get_by_text("Saisissez une date comme 2025-03-31.")).to_be_visible()
            axe_finds_nothing("events with errors")
            page.get_by_role("navigation", name="Langue").get_by_role("link", name="English").click()
            expect(page.get_by_role("heading", name="Consent events")).to_be_visible()
            expect(page.get_by_text("Use a date like 2025-03-31.")).to_be_visible()
            assert page.locator("html").get_attribute("lang") == "en"
            expect(page.get_by_label("Device")).to_have_value("desktop")  # the same search
            axe_finds_nothing("events in English")
            page.get_by_role("link", name="Overview").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            page.get_by_role("navigation", name="Language").get_by_role("link", name="Français").click()
            expect(page.get_by_role("heading", name="Vue d'ensemble")).to_be_visible()
        finally:
            browser.close()
