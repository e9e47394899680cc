"""The privacy team's classifications: checked decisions, laid over the catalog, exported as config, and in
force on every instance's next page without a restart."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.classification import (
    SITE_VENDOR_ID,
    ClassificationError,
    DecisionRequest,
    Overlay,
    apply_overlay,
    decide,
    to_toml,
    vendor_tables,
)
from consent_gateway.config import Config, load_config
from consent_gateway.html import CHUNK_CACHE
from consent_gateway.middleware import ConsentGateway
from consent_gateway.site_rules import ClassificationStore
from consent_gateway.store import open_log
from consent_gateway.thirdparty import site_catalog
from tests.conftest import TEST_SECRET_KEYS
from tests.store.conftest import own_redis, redis_prefix  # noqa: F401  # fixtures: a Redis (and keys) of its own

TRACKER = "https://cdn.newtracker.example/t.js"
CATEGORIES = ("necessary", "analytics", "session-replay", "marketing", "preferences", "unclassified")


def decided(overlay: Overlay, config: Config, **fields: str) -> Overlay:
    catalog = apply_overlay(site_catalog(config), overlay)
    decision = decide(
        DecisionRequest(**fields), catalog, overlay, categories=CATEGORIES, required_category="necessary",
        by="dpo", at_ms=1,
    )
    return overlay.with_decision(decision)


def test_a_host_given_to_a_new_vendor_is_that_vendor_in_every_tag_kind(config: Config) -> None:
    overlay = decided(Overlay(), config, kind="host", subject="CDN.NewTracker.example:443", action="new-vendor",
                      vendor_name="New Tracker", category="analytics", policy_url="https://newtracker.example/privacy")
    catalog = apply_overlay(site_catalog(config), overlay)
    vendor = catalog.vendor_for_url(TRACKER, "script")
    assert vendor is not None and (vendor.id, vendor.category, vendor.name) == ("new-tracker", "analytics",
                                                                               "New Tracker")
    assert catalog.vendor_for_url("https://cdn.newtracker.example/p.gif", "img") is vendor
    # a cookie assigned to it afterwards is that vendor's too
    overlay = decided(overlay, config, kind="cookie", subject="nt_id", action="vendor", vendor_id="new-tracker",
                      lifetime="1 year")
    catalog = apply_overlay(site_catalog(config), overlay)
    found = catalog.vendor_for_set_cookie("nt_id")
    assert found is not None and found.id == "new-tracker"
    assert [(c.pattern, c.lifetime) for c in found.cookies] == [("nt_id", "1 year")]


def test_a_host_assigned_to_a_catalog_vendor_keeps_that_vendors_own_hosts(config: Config) -> None:
    before = site_catalog(config).vendors["hotjar"]
    overlay = decided(Overlay(), config, kind="host", subject="rec.hotjar-mirror.example", action="vendor",
                      vendor_id="hotjar")
    catalog = apply_overlay(site_catalog(config), overlay)
    vendor = catalog.vendor_for_url("https://rec.hotjar-mirror.example/x.js", "script")
    assert vendor is not None and vendor.id == "hotjar"
    assert set(before.script_hosts) < set(vendor.script_hosts)
    assert catalog.vendor_for_url("https://static.hotjar.com/c/hotjar-1.js", "script") is vendor


def test_essential_items_are_always_allowed_and_carry_their_reason(config: Config) -> None:
    overlay = decided(Overlay(), config, kind="host", subject="pay.psp.example", action="essential",
                      reason="Card payment form")
    overlay = decided(overlay, config, kind="cookie", subject="cart", action="essential", reason="Shopping cart")
    catalog = apply_overlay(site_catalog(config), overlay)
    host_vendor = catalog.vendor_for_url("https://pay.psp.example/form.js", "script")
    assert host_vendor is not None and host_vendor.category == "necessary"
    assert host_vendor.purpose == "Card payment form"
    cookie_vendor = catalog.vendor_for_set_cookie("cart")
    assert cookie_vendor is not None and cookie_vendor.id == SITE_VENDOR_ID and cookie_vendor.category == "necessary"
    assert cookie_vendor.cookies[0].purpose == "Shopping cart"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "host", "subject": "not a host", "action": "essential", "reason": "x"}, "subject"),
        ({"kind": "cookie", "subject": "a;b", "action": "essential", "reason": "x"}, "subject"),
        ({"kind": "pixel", "subject": "x.example", "action": "essential", "reason": "x"}, "kind"),
        ({"kind": "host", "subject": "x.example", "action": "vendor", "vendor_id": "nobody"}, "vendor_id"),
        ({"kind": "host", "subject": "x.example", "action": "essential", "reason": "  "}, "reason"),
        ({"kind": "host", "subject": "x.example", "action": "new-vendor", "vendor_name": "Hotjar",
          "category": "analytics"}, "vendor_name"),
        ({"kind": "host", "subject": "x.example", "action": "new-vendor", "vendor_name": "X",
          "category": "unclassified"}, "category"),
        ({"kind": "host", "subject": "x.example", "action": "new-vendor", "vendor_name": "X",
          "category": "analytics", "policy_url": "javascript:alert(1)"}, "policy_url"),
        ({"kind": "host", "subject": "x.example", "action": "delete"}, "action"),
    ],
)
def test_a_decision_that_cannot_be_taken_names_its_field(config: Config, fields: dict[str, str], field: str) -> None:
    with pytest.raises(ClassificationError) as caught:
        decided(Overlay(), config, **fields)
    assert caught.value.field == field


def test_a_new_vendors_id_is_its_name_without_accents(config: Config) -> None:
    overlay = decided(Overlay(), config, kind="host", subject="widgets.meteo.example", action="new-vendor",
                      vendor_name="Météo du Quartier", category="preferences")
    assert overlay.decisions[0].vendor_id == "meteo-du-quartier"
    with pytest.raises(ClassificationError, match="needs at least one letter"):
        decided(Overlay(), config, kind="host", subject="x.example", action="new-vendor", vendor_name="★ ★",
                category="preferences")


def test_a_new_vendor_given_again_by_the_same_subject_is_updated(config: Config) -> None:
    overlay = decided(Overlay(), config, kind="host", subject="a.newco.example", action="new-vendor",
                      vendor_name="NewCo", category="marketing")
    overlay = decided(overlay, config, kind="cookie", subject="newco_id", action="vendor", vendor_id="newco")
    overlay = decided(overlay, config, kind="host", subject="a.newco.example", action="new-vendor",
                      vendor_name="NewCo", category="analytics", policy_url="https://newco.example/privacy")
    vendor = apply_overlay(site_catalog(config), overlay).vendors["newco"]
    assert (vendor.category, vendor.policy_url) == ("analytics", "https://newco.example/privacy")
    assert [c.pattern for c in vendor.cookies] == ["newco_id"]
    with pytest.raises(ClassificationError, match="already in the catalog"):  # another subject cannot take it
        decided(overlay, config, kind="host", subject="b.newco.example", action="new-vendor", vendor_name="NewCo",
                category="marketing")


def test_a_new_vendor_cannot_go_while_other_subjects_belong_to_it(config: Config) -> None:
    overlay = decided(Overlay(), config, kind="host", subject="a.newco.example", action="new-vendor",
                      vendor_name="NewCo", category="marketing")
    overlay = decided(overlay, config, kind="cookie", subject="newco_id", action="vendor", vendor_id="newco")
    with pytest.raises(ClassificationError, match="newco_id"):
        overlay.without("host", "a.newco.example")
    overlay = overlay.without("cookie", "newco_id").without("host", "a.newco.example")
    assert overlay.decisions == ()


def test_the_export_is_config_that_gives_the_same_catalog(config: Config, tmp_path: Path) -> None:
    """Round trip: the exported [[vendors]] appended to the site's config file, loaded by the config loader,
    give the catalog the overlay gave."""
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        '[[vendors]]\nid = "hotjar"\nname = "Hotjar (ours)"\n\n'
        '[[vendors]]\nid = "shop-ads"\ncategory = "marketing"\nscript_hosts = ["ads.shop.example"]\n',
        encoding="utf-8",
    )
    site = replace(load_config(config_file), gateway=config.gateway, store=config.store)
    overlay = decided(Overlay(), site, kind="host", subject="cdn.newtracker.example", action="new-vendor",
                      vendor_name="New Tracker", category="analytics", policy_url="https://newtracker.example/p")
    overlay = decided(overlay, site, kind="cookie", subject="nt_id", action="vendor", vendor_id="new-tracker")
    overlay = decided(overlay, site, kind="host", subject="rec.hotjar-mirror.example", action="vendor",
                      vendor_id="hotjar")
    overlay = decided(overlay, site, kind="storage", subject="shopAdsQueue", action="vendor", vendor_id="shop-ads")
    overlay = decided(overlay, site, kind="host", subject="pay.psp.example", action="essential",
                      reason='Card payment "3-D Secure" form')
    overlay = decided(overlay, site, kind="cookie", subject="cart", action="essential", reason="Shopping cart")
    expected = apply_overlay(site_catalog(site), overlay)
    exported = to_toml(vendor_tables(site_catalog(site).vendors, overlay), overlay)

    config_file.write_text(config_file.read_text(encoding="utf-8") + "\n" + exported, encoding="utf-8")
    reloaded = site_catalog(load_config(config_file))
    assert dict(reloaded.vendors) == dict(expected.vendors)
    assert reloaded.vendors["hotjar"].name == "Hotjar (ours)"  # the site's own override is kept
    assert "# host pay.psp.example: essential" in exported


# -- in force on the next page of every instance, without a restart ---------------------------------------


def page(request: Request) -> Response:
    padding = "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>"  # long enough for the chunk cache
    return HTMLResponse(
        f"<!doctype html><html><head><title>Shop</title></head><body>{padding}"
        f'<script src="{TRACKER}"></script>{padding}</body></html>',
        headers={"Set-Cookie": "nt_id=42; Path=/; Max-Age=3600"},
    )


def instance(config: Config, instance_id: str) -> ConsentGateway:
    config = replace(config, gateway=replace(config.gateway, instance_id=instance_id))
    gateway = ConsentGateway(Starlette(routes=[Route("/", page)]), config, secret_keys=TEST_SECRET_KEYS)
    gateway.rules_watcher.interval_s = 0.05
    return gateway


def held_as(body: str) -> str | None:
    at = body.find(f'data-cg-src="{TRACKER}"')
    if at == -1:
        return None
    tag = body[body.rfind("<script", 0, at) : body.find(">", at)]
    return tag.split('data-category="')[1].split('"')[0]


def next_pages(client: TestClient, until: str | None, seconds: float = 5.0) -> httpx.Response:
    """Pages asked for one after another (the watcher checks between them) until one holds the tracker under
    the category ``until`` (None: lets it through)."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/")
        if held_as(response.text) == until or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


async def classify_from_elsewhere(url: str, **fields: str) -> None:
    """What the dashboard of another instance does: a decision written to the shared store."""
    log = open_log(url)
    await log.open()
    try:
        store = ClassificationStore(log)
        config = Config()

        def change(overlay: Overlay) -> Overlay:
            catalog = apply_overlay(site_catalog(config), overlay)
            request = DecisionRequest(**fields)
            return overlay.with_decision(decide(request, catalog, overlay, categories=CATEGORIES,
                                                required_category="necessary", by="dpo", at_ms=1))

        await store.change(change)
    finally:
        await log.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_classification_reaches_every_instance_on_its_next_page_without_a_restart(
    config: Config, backend: str, request: pytest.FixtureRequest
) -> None:
    import asyncio

    if backend == "redis":
        url = request.getfixturevalue("redis_url") + "?prefix=" + request.getfixturevalue("redis_prefix")
        config = replace(config, store=replace(config.store, url=url))
    first, second = instance(config, "gw-a"), instance(config, "gw-b")
    with TestClient(first, base_url="https://www.shop.example") as a, \
            TestClient(second, base_url="https://www.shop.example") as b:
        before = a.get("/")
        hits = CHUNK_CACHE.hits
        assert held_as(a.get("/").text) == "unclassified" and held_as(b.get("/").text) == "unclassified"
        assert CHUNK_CACHE.hits > hits  # the page's chunks are served from the cache: it must not go stale
        assert "nt_id=42" in before.headers.get("set-cookie", "")  # an unknown cookie passes by default

        asyncio.run(classify_from_elsewhere(config.store_url, kind="host", subject="cdn.newtracker.example",
                                            action="new-vendor", vendor_name="New Tracker", category="analytics"))
        asyncio.run(classify_from_elsewhere(config.store_url, kind="cookie", subject="nt_id", action="vendor",
                                            vendor_id="new-tracker"))
        for client in (a, b):
            after = next_pages(client, "analytics")
            assert held_as(after.text) == "analytics", "the page was not rewritten with the new vendor"
            assert 'data-cg-vendor="new-tracker"' in after.text
            assert "nt_id" not in after.headers.get("set-cookie", "")  # now a tracker's cookie: dropped
        # the banner's vendor list (banner-data.js) names it too
        data = a.get(f"/_consent/banner-data.js?v={first.banner.version}").text
        assert '"id":"new-tracker"' in data


def test_two_officers_deciding_at_once_both_land(config: Config) -> None:
    """Compare-and-set: the later writer re-reads the overlay and lays its decision over the other's."""
    import asyncio

    async def run() -> Overlay:
        await asyncio.gather(*(
            classify_from_elsewhere(config.store_url, kind="host", subject=f"cdn{i}.newtracker.example",
                                    action="essential", reason=f"reason {i}")
            for i in range(6)
        ))  # fmt: skip
        log = open_log(config.store_url)
        await log.open()
        try:
            return await ClassificationStore(log).load()
        finally:
            await log.close()

    overlay = asyncio.run(run())
    assert sorted(d.subject for d in overlay.decisions) == [f"cdn{i}.newtracker.example" for i in range(6)]
    assert overlay.version == 6


@pytest.mark.slow
def test_pages_keep_the_rules_in_force_while_the_store_is_down(config: Config, request: pytest.FixtureRequest) -> None:
    """Fail open for serving: a store that does not answer leaves the last classifications in force, and the
    next check after it is back applies what changed meanwhile."""
    import asyncio

    from consent_gateway import metrics

    redis = request.getfixturevalue("own_redis")
    config = replace(config, store=replace(config.store, url=redis.url))
    asyncio.run(classify_from_elsewhere(redis.url, kind="host", subject="cdn.newtracker.example",
                                        action="new-vendor", vendor_name="New Tracker", category="analytics"))
    gateway = instance(config, "gw-a")
    with TestClient(gateway, base_url="https://www.shop.example") as client:
        assert held_as(next_pages(client, "analytics").text) == "analytics"
        redis.stop()
        deadline = time.monotonic() + 10
        while metrics.value("store_errors_total", operation="classifications") == 0 and time.monotonic() < deadline:
            page = client.get("/")
            assert page.status_code == 200 and held_as(page.text) == "analytics"
            time.sleep(0.05)
        assert metrics.value("store_errors_total", operation="classifications") >= 1
        redis.start()
        asyncio.run(classify_from_elsewhere(redis.url, kind="host", subject="cdn.newtracker.example",
                                            action="essential", reason="Our own CDN after all"))
        assert held_as(next_pages(client, None, seconds=15).text) is None  # essential: not held at all
