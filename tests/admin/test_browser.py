"""A real Chromium logs in to the dashboard served by uvicorn and filters the event search."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.servers import CHROMIUM_ARGS, ServerThread

from .conftest import DPO_PASSWORD, PREFIX, make_events

pytestmark = pytest.mark.browser

#: Set to write docs/screenshots/admin-overview.png (read at import: the test environment is cleaned later).
UPDATE_SCREENSHOTS = bool(os.environ.get("CONSENT_GATEWAY_UPDATE_SCREENSHOTS"))
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "admin-overview.png"


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
