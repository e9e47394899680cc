"""A real Chromium: the admin makes a user on the Users and tokens page, the new user logs in with the
password shown once, and is shut out on their next click once the admin disables them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from consent_gateway.admin import build_admin_app
from consent_gateway.config import AdminUser, Config
from consent_gateway.store import ConsentLog
from tests.servers import CHROMIUM_ARGS, ServerThread

from .conftest import FAST_ARGON2, PREFIX, SECRET_KEYS, Clock, mounted

pytestmark = pytest.mark.browser
ROOT_PASSWORD = "the admin's own long passphrase"


@pytest.fixture
def served(admin_config: Config, consent_log: ConsentLog, clock: Clock) -> Iterator[str]:
    root = AdminUser(name="root", password_hash=FAST_ARGON2.hash(ROOT_PASSWORD), role="admin")
    config = replace(admin_config, admin=replace(admin_config.admin, users=(*admin_config.admin.users, root)))
    app = mounted(build_admin_app(config, consent_log, SECRET_KEYS, clock=clock, environ={}))
    with ServerThread(app, lifespan="off") as server:
        yield server.url


def test_an_admin_makes_a_user_who_logs_in_and_is_shut_out_once_disabled(
    served: str, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    def log_in(page: Page, name: str, password: str) -> None:
        page.goto(f"{served}{PREFIX}/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()

    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            admin = browser.new_context().new_page()
            admin.on("console", lambda m: refused.append(m.text) if "Refused" in m.text else None)
            log_in(admin, "root", ROOT_PASSWORD)
            admin.get_by_role("link", name="Users and tokens").click()
            expect(admin.get_by_role("heading", name="Users and tokens")).to_be_visible()
            admin.get_by_label("New user").fill("carol")
            admin.get_by_label("with role").first.select_option("analyst")
            admin.get_by_role("button", name="Make user").click()
            expect(admin.get_by_role("status").first).to_contain_text("User carol made (analyst).")
            password = admin.locator("#secret-value").input_value()
            assert len(password) >= 20
            admin.screenshot(path=str(tmp_path / "users.png"), full_page=True)

            carol = browser.new_context().new_page()
            log_in(carol, "carol", password)
            expect(carol.get_by_text("Signed in as")).to_contain_text("carol")
            expect(carol.get_by_role("link", name="Users and tokens")).to_have_count(0)

            admin.goto(f"{served}{PREFIX}/users")
            admin.locator('tr[data-name="carol"]').get_by_role("button", name="Disable").click()
            expect(admin.get_by_role("status").first).to_contain_text("carol is disabled")
            expect(admin.locator('tr[data-name="carol"]')).to_contain_text("disabled")

            carol.get_by_role("link", name="Events").click()
            expect(carol.get_by_role("heading", name="Log in")).to_be_visible()
        finally:
            browser.close()
    assert refused == []
