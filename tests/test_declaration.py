"""The published cookie declaration: what the site really uses, in French and English, as HTML and JSON."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import Config
from consent_gateway.inventory.records import COOKIE, HOST, STORAGE, VIOLATION, InventoryEntry, key_of
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import open_log
from tests.conftest import TEST_SECRET_KEYS
from tests.test_classification import classify_from_elsewhere

SEEN_MS = 1_795_000_000_000  # 2026-11-18


def page(request: Request) -> Response:
    return HTMLResponse("<!doctype html><html><head><title>Shop</title></head><body>Shop</body></html>")


def entries() -> list[InventoryEntry]:
    def entry(kind: str, key: str, name: str, vendor: str, **detail: object) -> InventoryEntry:
        return InventoryEntry(kind, key, name, vendor, count=3, detail=dict(detail), first_seen_ms=SEEN_MS - 86_400_000,
                              last_seen_ms=SEEN_MS)

    return [
        entry(HOST, "www.google-analytics.com", "www.google-analytics.com", "google-analytics"),
        entry(HOST, "cdn.newtracker.example", "cdn.newtracker.example", "unclassified"),
        entry(HOST, "inline:google-analytics", "inline:google-analytics", "google-analytics"),  # a snippet
        entry(COOKIE, key_of("_ga", "", "/"), "_ga", "google-analytics", domain="", path="/", max_age_s=34_000_000),
        entry(COOKIE, key_of("cart", "", "/"), "cart", "", domain="", path="/", max_age_s=None),
        entry(STORAGE, key_of("localStorage", "nt_queue"), "nt_queue", "", area="localStorage"),
        entry(STORAGE, key_of("cookie", "nt_uid"), "nt_uid", "", area="cookie"),  # a script's cookie
        # a tracker a tag manager injected after load: no page names it, the CSP backstop reported it
        entry(VIOLATION, key_of("connect.facebook.net", "script-src-elem", "/", "none"), "connect.facebook.net",
              "meta-pixel", directive="script-src-elem", page_path="/", consent_state="none"),
        entry(VIOLATION, key_of("forged.example", "img-src", "/", "none"), "forged.example", "unclassified",
              directive="img-src", page_path="/", consent_state="none"),
    ]


async def seed(url: str) -> None:
    log = open_log(url)
    await log.open()
    try:
        await log.merge_inventory(entries())
    finally:
        await log.close()


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    asyncio.run(seed(config.store_url))
    gateway = ConsentGateway(Starlette(routes=[Route("/", page)]), config, secret_keys=TEST_SECRET_KEYS)
    gateway.rules_watcher.interval_s = 0.05
    with TestClient(gateway, base_url="https://www.shop.example") as test_client:
        yield test_client


def test_the_declaration_lists_what_the_site_uses_in_the_visitors_language(client: TestClient) -> None:
    french = client.get("/_consent/cookies", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert french.status_code == 200 and french.headers["content-language"] == "fr"
    assert "<h1>Cookies et traceurs utilisés par ce site</h1>" in french.text
    assert "Mesure d&#39;audience" in french.text and "Google Analytics" in french.text
    assert "<code>_ga</code>" in french.text and "2026-11-18" in french.text
    assert "<script" not in french.text  # readable without JS, and nothing runs
    style = french.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in french.headers["content-security-policy"]
    assert "<code>cg_consent</code>" in french.text  # the gateway's own cookies are declared, always
    assert "Retient vos choix en matière de cookies" in french.text and "13 mois" in french.text
    assert 'href="/_consent/me?lang=fr"' in french.text  # the visitor's own space: history, copy, erasure
    english = client.get("/_consent/cookies", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "<h1>Cookies and trackers this site uses</h1>" in english.text and "Analytics" in english.text
    # a link from a privacy policy in one language
    assert client.get("/_consent/cookies?lang=en", headers={"Accept-Language": "fr"}).headers[
        "content-language"] == "en"
    assert client.get("/_consent/cookies?lang=xx", headers={"Accept-Language": "en"}).headers[
        "content-language"] == "en"


def test_the_json_declaration_has_the_used_vendors_not_the_whole_catalog(client: TestClient) -> None:
    body = client.get("/_consent/cookies.json", headers={"Accept-Language": "en"}).json()
    vendors = {v["id"]: (c["id"], v) for c in body["categories"] for v in c["vendors"]}
    assert "hotjar" not in vendors and "criteo" not in vendors  # in the catalog, not on this site
    category, analytics = vendors["google-analytics"]
    assert category == "analytics" and analytics["hosts"] == ["www.google-analytics.com"]
    ga = next(c for c in analytics["cookies"] if c["name"].startswith("_ga"))
    assert ga["last_seen_ms"] == SEEN_MS and ga["lifetime"] and ga["party"] == "first" and ga["purpose"]
    category, meta = vendors["meta-pixel"]
    assert category == "marketing" and meta["hosts"] == ["connect.facebook.net"]
    category, unknown = vendors["unclassified"]
    assert category == "unclassified" and unknown["hosts"] == ["cdn.newtracker.example"]
    assert [c["name"] for c in unknown["cookies"]] == ["cart"] and unknown["cookies"][0]["lifetime"] == "session"
    # names only browsers reported (anyone can post one) reach the public page once they belong to a vendor
    assert unknown["storage"] == [] and "forged.example" not in unknown["hosts"]
    category, site = vendors["site-essential"]
    assert category == "necessary"  # the gateway's own cookies, each with its purpose and lifetime
    assert [(c["name"], c["lifetime"]) for c in site["cookies"]] == [
        ("cg_consent", "13 months"), ("cg_consent_id", "13 months"), ("cg_clean", "2 minutes"), ("cg_inv", "1 day")]
    assert all(c["purpose"] for c in site["cookies"])


def test_a_classification_shows_in_the_declaration(client: TestClient, config: Config) -> None:
    asyncio.run(classify_from_elsewhere(config.store_url, kind="cookie", subject="cart", action="essential",
                                        reason="Keeps your shopping cart"))
    asyncio.run(classify_from_elsewhere(config.store_url, kind="host", subject="cdn.newtracker.example",
                                        action="new-vendor", vendor_name="New Tracker", category="marketing",
                                        policy_url="https://newtracker.example/privacy"))
    deadline = time.monotonic() + 5
    while True:
        client.get("/")  # pages let the watcher check the store
        body = client.get("/_consent/cookies.json").json()
        vendors = {v["id"]: (c["id"], v) for c in body["categories"] for v in c["vendors"]}
        if "new-tracker" in vendors or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    category, tracker = vendors["new-tracker"]
    assert category == "marketing" and tracker["policy_url"] == "https://newtracker.example/privacy"
    assert tracker["hosts"] == ["cdn.newtracker.example"] and tracker["last_seen_ms"] == SEEN_MS
    _, site = vendors["site-essential"]
    cart = next(c for c in site["cookies"] if c["name"] == "cart")
    assert cart["purpose"] == "Keeps your shopping cart" and cart["last_seen_ms"] == SEEN_MS
    _, unknown = vendors.get("unclassified", ("", {"hosts": [], "cookies": []}))
    assert "cdn.newtracker.example" not in unknown["hosts"] and "cart" not in [c["name"] for c in unknown["cookies"]]


def test_the_banner_lists_the_vendors_the_site_uses(client: TestClient, config: Config) -> None:
    gateway = client.app
    assert isinstance(gateway, ConsentGateway)
    deadline = time.monotonic() + 5
    while gateway.rules_watcher.rules.used_vendors is None and time.monotonic() < deadline:
        client.get("/")
        time.sleep(0.05)
    data = client.get(f"/_consent/banner-data.js?v={gateway.banner.version}").text
    assert '"id":"google-analytics"' in data
    assert '"id":"hotjar"' not in data and '"id":"criteo"' not in data
