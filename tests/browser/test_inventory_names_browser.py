"""The inventory's name reporter in a real Chromium behind the real gateway: after a choice, the names of the
cookies and storage keys the page's scripts wrote reach the inventory — never their values — once a day.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from consent_gateway.config import InventoryConfig
from consent_gateway.inventory.records import STORAGE, InventoryEntry, InventoryQuery
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import open_log

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

#: values the page writes: none may ever leave the browser
SECRETS = ("GA1.2.SECRET-COOKIE-VALUE", "LOCAL-SECRET-VALUE", "SESSION-SECRET-VALUE", "HTTPONLY-SECRET")


def page(request: Request) -> Response:
    response = HTMLResponse(
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Names only</title></head><body>
<h1>Shop</h1>
<script>
  document.cookie = "_ga={SECRETS[0]}; path=/";
  document.cookie = "theme=dark; path=/";
  localStorage.setItem("_hjSessionUser_77", "{SECRETS[1]}");
  sessionStorage.setItem("checkout_token", "{SECRETS[2]}");
</script>
</body></html>"""
    )
    response.set_cookie("session", SECRETS[3], httponly=True)  # the server's: seen by Set-Cookie, not by scripts
    return response


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("inventory-browser")
    config = replace(gateway_config(data), inventory=InventoryConfig(flush_interval_seconds=0.2))
    app = ConsentGateway(Starlette(routes=[Route("/", page)]), config, secret_keys=SECRET_KEYS)
    with serve(app) as url:
        yield url, data / "consent.db"


def stored_names(database: Path) -> list[InventoryEntry]:
    """The browser-reported names in the store, read by a connection of its own (as another instance would)."""

    async def read() -> list[InventoryEntry]:
        log = open_log(f"sqlite:///{database}")
        await log.open()
        try:
            return (await log.read_inventory(InventoryQuery(kind=STORAGE))).entries
        finally:
            await log.close()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        return pool.submit(asyncio.run, read()).result()


def test_names_reach_the_inventory_after_a_choice_and_values_never_do(
    visit: Any, site: tuple[str, Path]
) -> None:
    url, database = site
    v: Visit = visit(base_url=url)
    posts: list[tuple[str, str]] = []
    v.page.on("request", lambda r: posts.append((r.url, r.post_data or "")) if r.method == "POST" else None)
    v.goto("/")
    assert v.page.locator("script[src*='inventory-report.js']").count() == 0  # no choice yet: no reporter
    v.page.get_by_role("button", name="Accept all", exact=True).click()
    expect(v.page.locator("#cg-root .cg-b")).to_be_hidden()

    with v.page.expect_request(lambda r: r.method == "POST" and "/_consent/inventory-report" in r.url,
                               timeout=15_000) as reported:
        v.goto("/")  # the next page carries the reporter; it reports a little after load
    body = json.loads(reported.value.post_data or "{}")
    assert set(body["cookie"]) >= {"_ga", "theme"}
    assert body["localStorage"] == ["_hjSessionUser_77"] and body["sessionStorage"] == ["checkout_token"]
    sent = "".join(data for _, data in posts)
    for secret in SECRETS:
        assert secret not in sent  # no value left the browser, in any POST
    assert "session" not in body["cookie"]  # HttpOnly: not the script's to see (Set-Cookie inventories it)
    assert reported.value.response() is not None and reported.value.response().status == 204  # type: ignore[union-attr]

    entries: list[InventoryEntry] = []
    for _ in range(50):  # the gateway merges into the store every 0.2 s
        entries = stored_names(database)
        if len(entries) >= 4:
            break
        v.page.wait_for_timeout(100)
    found = {(e.detail["area"], e.name): e.vendor for e in entries}
    assert found == {
        ("cookie", "_ga"): "google-analytics",
        ("cookie", "theme"): "",
        ("localStorage", "_hjSessionUser_77"): "hotjar",
        ("sessionStorage", "checkout_token"): "",
    }
    assert not any(secret in repr(e.as_dict()) for e in entries for secret in SECRETS)

    # once a day: the answer set cg_inv, so the next pages do not load the reporter
    assert "cg_inv" in v.cookie_names()
    before = len(posts)
    v.goto("/")
    assert v.page.locator("script[src*='inventory-report.js']").count() == 0
    v.page.wait_for_timeout(2500)
    assert [u for u, _ in posts[before:] if "inventory-report" in u] == []
    assert v.console_errors == []
