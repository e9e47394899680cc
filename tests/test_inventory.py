"""The inventory end to end through the real middleware (no browser): what pages, Set-Cookie headers, CSP
reports and the banner's name reports add to the store, flushed off the request path, shared and kept."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import Config, InventoryConfig, StoreConfig
from consent_gateway.errors import StoreUnavailable
from consent_gateway.inventory.collector import InventoryCollector
from consent_gateway.inventory.flusher import InventoryFlusher
from consent_gateway.inventory.records import COOKIE, HOST, STORAGE, UNCLASSIFIED, VIOLATION, InventoryQuery
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import ConsentLog, open_log
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
UNKNOWN = "https://tags.unknown-ads.example/t.js"
GA = "https://www.google-analytics.com/analytics.js"
LIBRARY_CDN = "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/jquery.min.js"
#: long enough for the chunk cache (pages served again are replayed from it)
FILLER = "<p>" + "Lorem ipsum dolor sit amet. " * 80 + "</p>"
YEAR_S = 365 * 24 * 3600


def page(request: Request) -> Response:
    return HTMLResponse(
        "<!doctype html><html><head><title>Shop</title>"
        f'<script src="{GA}"></script><script src="{LIBRARY_CDN}"></script>'
        f"</head><body>{FILLER}"
        f'<script src="{UNKNOWN}"></script><img src="https://tags.unknown-ads.example/p.gif?uid=42">'
        '<img src="/logo.png" alt="logo"></body></html>'
    )


def snippet(request: Request) -> Response:
    return HTMLResponse(
        "<!doctype html><html><head><script>(function(h,o,t,j,a,r){h.hj=h.hj||function(){};"
        "h._hjSettings={hjid:1};})(window,document,'https://static.hotjar.com/c/hotjar-','.js?sv=');</script>"
        '<script src="/matomo.js"></script></head><body>ok</body></html>'
    )


def cookies(request: Request) -> Response:
    response = HTMLResponse("<!doctype html><html><head></head><body>ok</body></html>")
    response.set_cookie("_ga", "GA1.2.3", max_age=2 * YEAR_S, domain="example.org", samesite="lax")
    response.set_cookie("cart", "c-1", httponly=True, secure=True, samesite="strict")
    return response


def gateway(config: Config) -> ConsentGateway:
    routes = [Route("/", page), Route("/shop", page), Route("/cookies", cookies), Route("/snippet", snippet)]
    app = Starlette(routes=routes)
    return ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(gateway(config), base_url="https://www.example.org") as test_client:
        yield test_client


def flush(client: TestClient) -> None:
    """What the periodic flush does: the gateway's sightings merged into the store."""
    app = client.app
    assert isinstance(app, ConsentGateway)
    client.portal.call(app.inventory_flusher.flush)  # type: ignore[union-attr]


def stored(client: TestClient, **query: object) -> dict[str, dict[str, object]]:
    """The stored entries by name, as a user of the store reads them."""
    app = client.app
    assert isinstance(app, ConsentGateway)
    page = client.portal.call(app.log.read_inventory, InventoryQuery(**query))  # type: ignore[union-attr, arg-type]
    return {e.name: e.as_dict() for e in page.entries}


def read(client: TestClient, **query: object) -> dict[str, dict[str, object]]:
    flush(client)
    return stored(client, **query)


def choose(client: TestClient, **choices: bool) -> None:
    answer = client.post("/_consent/choices", json={"choices": choices}, headers=SAME_ORIGIN)
    assert answer.status_code == 200, answer.text


# -- third parties seen in pages ------------------------------------------------------------------------------


def test_third_party_hosts_of_pages_are_inventoried_with_vendor_kinds_counts_and_paths(client: TestClient) -> None:
    client.get("/shop?session=secret")
    client.get("/")
    hosts = read(client, kind=HOST)
    assert set(hosts) == {"tags.unknown-ads.example", "www.google-analytics.com"}  # not the allowed CDN, not ours
    unknown = hosts["tags.unknown-ads.example"]
    assert unknown["vendor"] == UNCLASSIFIED
    assert unknown["elements"] == ["script", "img"]
    assert (unknown["count"], unknown["held"], unknown["allowed"]) == (4, 4, 0)
    assert unknown["samples"] == ["/", "/shop"]  # no query string, ever
    ga = hosts["www.google-analytics.com"]
    assert (ga["vendor"], ga["count"], ga["held"]) == ("google-analytics", 2, 2)


def test_an_inline_snippet_and_a_self_hosted_tool_are_inventoried_by_vendor(client: TestClient) -> None:
    client.get("/snippet")
    hosts = read(client, kind=HOST)
    assert hosts["inline:hotjar"]["vendor"] == "hotjar"  # the snippet names no host of its own
    assert hosts["inline:hotjar"]["held"] == 1
    assert hosts["example.org"]["vendor"] == "matomo"  # a relative URL: the site's own host


def test_a_page_served_from_the_chunk_cache_still_counts_its_third_parties(client: TestClient) -> None:
    for _ in range(5):
        client.get("/")
    app = client.app
    assert isinstance(app, ConsentGateway)
    assert read(client)["tags.unknown-ads.example"]["count"] == 10  # two elements, five views


def test_an_allowed_visitor_counts_as_allowed_not_held(client: TestClient) -> None:
    choose(client, analytics=True, unclassified=True)
    client.get("/")
    hosts = read(client, kind=HOST)
    assert (hosts["tags.unknown-ads.example"]["held"], hosts["tags.unknown-ads.example"]["allowed"]) == (0, 2)
    assert hosts["www.google-analytics.com"]["allowed"] == 1


def test_a_page_view_costs_no_store_round_trip(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, ConsentGateway)
    before = client.portal.call(app.log.read_inventory, InventoryQuery())  # type: ignore[union-attr]
    for _ in range(3):
        client.get("/")
    assert client.portal.call(app.log.read_inventory, InventoryQuery()).total == before.total == 0  # type: ignore[union-attr]
    assert len(app.inventory) == 2  # waiting in memory for the flusher
    assert read(client)["tags.unknown-ads.example"]["count"] == 6


# -- cookies set by responses ---------------------------------------------------------------------------------


def test_set_cookies_are_inventoried_dropped_or_passed_with_their_attributes(client: TestClient) -> None:
    client.get("/cookies")
    found = read(client, kind=COOKIE)
    ga, cart = found["_ga"], found["cart"]
    assert (ga["vendor"], ga["dropped"], ga["passed"]) == ("google-analytics", 1, 0)
    assert ga["detail"] == {"domain": "example.org", "path": "/", "max_age_s": 2 * YEAR_S, "http_only": False,
                            "secure": False, "same_site": "Lax"}
    assert (cart["vendor"], cart["dropped"], cart["passed"]) == ("", 0, 1)
    assert cart["detail"]["http_only"] is True and cart["detail"]["same_site"] == "Strict"
    assert cart["detail"]["max_age_s"] is None  # a session cookie
    assert "GA1" not in json.dumps(found) and "c-1" not in json.dumps(found)  # never a value


def test_a_granted_trackers_capped_lifetime_is_counted(client: TestClient) -> None:
    choose(client, analytics=True)
    response = client.get("/cookies")
    assert "Max-Age=34128000" in response.headers["set-cookie"]  # 395 days
    ga = read(client, kind=COOKIE)["_ga"]
    assert (ga["passed"], ga["capped"], ga["dropped"]) == (1, 1, 0)
    assert ga["detail"]["max_age_s"] == 2 * YEAR_S  # what the site asked for


# -- loads without consent reported by the CSP backstop -------------------------------------------------------


def test_a_csp_report_becomes_a_load_without_consent(client: TestClient) -> None:
    report = {"csp-report": {"document-uri": "https://www.example.org/shop?q=1", "blocked-uri":
                             "https://late.tracker.example/x.js", "effective-directive": "script-src-elem"}}
    answer = client.post("/_consent/csp-report?state=none", content=json.dumps(report),
                         headers={"content-type": "application/csp-report"})
    assert answer.status_code == 204
    (entry,) = read(client, kind=VIOLATION).values()
    assert entry["name"] == "late.tracker.example" and entry["vendor"] == UNCLASSIFIED
    assert entry["detail"] == {"directive": "script-src-elem", "page_path": "/shop", "consent_state": "none"}


# -- names reported by browsers -------------------------------------------------------------------------------


REPORT = "/_consent/inventory-report"
NAMES = {"cookie": ["_ga", "theme", "cg_clean"], "localStorage": ["_hjSessionUser_123", "cart"],
         "sessionStorage": []}


def test_a_visitor_who_chose_gets_the_reporter_once_a_day(client: TestClient) -> None:
    assert "inventory-report.js" not in client.get("/").text  # no choice yet
    choose(client, analytics=True)
    assert 'inventory-report.js?v=' in client.get("/").text
    answer = client.post(REPORT, json=NAMES, headers=SAME_ORIGIN)
    assert answer.status_code == 204
    assert "cg_inv=1" in answer.headers["set-cookie"] and "Max-Age=86400" in answer.headers["set-cookie"]
    assert "inventory-report.js" not in client.get("/").text  # reported today
    assert client.get("/_consent/inventory-report.js").headers["content-type"].startswith("text/javascript")


def test_reported_names_are_inventoried_with_their_vendor_and_area(client: TestClient) -> None:
    choose(client, analytics=True)
    assert client.post(REPORT, json=NAMES, headers=SAME_ORIGIN).status_code == 204
    found = {(e["detail"]["area"], e["name"]): e["vendor"]  # type: ignore[index]
             for e in read(client, kind=STORAGE).values()}
    assert found == {("cookie", "_ga"): "google-analytics", ("cookie", "theme"): "",
                     ("localStorage", "_hjSessionUser_123"): "hotjar", ("localStorage", "cart"): ""}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (NAMES, {"Sec-Fetch-Site": "cross-site"}, 403, "cross_site_request"),
        ("names", {**SAME_ORIGIN, "content-type": "text/plain"}, 415, "unsupported_media_type"),
        ("{not json", {**SAME_ORIGIN, "content-type": "application/json"}, 400, None),
        ([], SAME_ORIGIN, 400, "invalid_type"),
        ({"indexedDB": ["x"]}, SAME_ORIGIN, 400, "unknown_field"),
        ({"cookie": {"_ga": "GA1.2.3"}}, SAME_ORIGIN, 400, "invalid_type"),  # values are refused
        ({"cookie": [""]}, SAME_ORIGIN, 400, "invalid_name"),
        ({"cookie": [42]}, SAME_ORIGIN, 400, "invalid_name"),
        ({"cookie": ["n"] * 201}, SAME_ORIGIN, 400, "invalid_type"),
        ({"cookie": ["x" * 300]}, SAME_ORIGIN, 400, "invalid_name"),
        ({"cookie": ["n" * 200] * 100}, SAME_ORIGIN, 413, "body_too_large"),
    ],
)
def test_a_bad_report_is_a_json_error_and_changes_nothing(
    client: TestClient, body: object, headers: dict[str, str], status: int, code: str | None
) -> None:
    choose(client, analytics=True)
    content = body if isinstance(body, str) else json.dumps(body)
    answer = client.post(REPORT, content=content, headers={"content-type": "application/json", **headers})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert "set-cookie" not in answer.headers
    assert read(client, kind=STORAGE) == {}


def test_a_visitor_is_counted_once_a_day_even_without_the_reported_cookie(client: TestClient) -> None:
    choose(client, analytics=True)
    for _ in range(3):
        assert client.post(REPORT, json=NAMES, headers=SAME_ORIGIN).status_code == 204
        client.cookies.delete("cg_inv")  # a browser that drops it still counts once
    found = read(client, kind=STORAGE)
    assert found["_ga"]["count"] == 1


def test_a_report_without_a_choice_is_refused(client: TestClient) -> None:
    answer = client.post(REPORT, json=NAMES, headers=SAME_ORIGIN)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "no_consent"
    assert read(client, kind=STORAGE) == {}


def test_reports_are_rate_limited_per_address(config: Config) -> None:
    limited = replace(config, inventory=InventoryConfig(report_rate_per_minute=1, report_rate_burst=2))
    with TestClient(gateway(limited), base_url="https://www.example.org") as client:
        choose(client, analytics=True)
        assert [client.post(REPORT, json=NAMES, headers=SAME_ORIGIN).status_code for _ in range(3)] == [204, 204, 429]
        answer = client.post(REPORT, json=NAMES, headers=SAME_ORIGIN)
        assert answer.json()["error"]["code"] == "too_many_requests" and int(answer.headers["retry-after"]) >= 1


# -- shared, kept, measured -----------------------------------------------------------------------------------


def test_the_inventory_survives_a_restart(config: Config) -> None:
    with TestClient(gateway(config), base_url="https://www.example.org") as first:
        first.get("/")
        first.get("/cookies")
    # the shutdown flushed what the first instance saw; a new process reads it from the store
    with TestClient(gateway(config), base_url="https://www.example.org") as second:
        names = set(read(second))
    assert {"tags.unknown-ads.example", "www.google-analytics.com", "_ga", "cart"} <= names


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never the whole database)."""
    import redis as redis_sync

    prefix = f"cgtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    with redis_sync.Redis.from_url(redis_url) as raw:
        keys = list(raw.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            raw.delete(*keys)


def test_two_instances_on_one_redis_share_one_inventory(
    config: Config, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    url = f"{redis_url}?prefix={redis_prefix}"

    def instance(name: str) -> ConsentGateway:
        gateway_config = replace(
            config,
            gateway=replace(config.gateway, instance_id=name, data_dir=str(tmp_path / name)),
            store=StoreConfig(url=url),
        )
        return gateway(gateway_config)

    with (TestClient(instance("gw-a"), base_url="https://www.example.org") as a,
          TestClient(instance("gw-b"), base_url="https://www.example.org") as b):
        a.get("/")
        b.get("/shop")
        b.get("/cookies")
        flush(a)
        flush(b)
        seen_by_a, seen_by_b = stored(a), stored(b)
    assert seen_by_a == seen_by_b
    assert seen_by_a["tags.unknown-ads.example"]["count"] == 4
    assert seen_by_a["tags.unknown-ads.example"]["samples"] == ["/", "/shop"]
    assert "_ga" in seen_by_a


def test_metrics_show_the_inventory_size_and_unclassified_hosts(client: TestClient) -> None:
    client.get("/")
    client.get("/cookies")
    read(client)
    text = client.get("/_consent/metrics").text
    assert 'consent_gateway_inventory_entries{kind="host"} 2' in text
    assert 'consent_gateway_inventory_entries{kind="cookie"} 2' in text
    assert "consent_gateway_inventory_unclassified_hosts 1" in text
    assert "consent_gateway_inventory_pending_entries 0" in text


# -- the collector and the flusher ----------------------------------------------------------------------------


def test_the_collector_is_bounded_and_says_what_it_dropped() -> None:
    from consent_gateway import metrics

    collector = InventoryCollector(max_pending=3)
    collector.names_reported("cookie", [(f"n{i}", "") for i in range(5)])
    assert len(collector) == 3
    assert metrics.value("inventory_sightings_dropped_total", kind=STORAGE) == 2


def test_pages_seen_again_count_every_view_across_drains() -> None:
    """Repeated pages (what the chunk cache serves) take a shortcut: alternating pages and a drain between
    two views of one page still count each view once, on each host."""
    collector = InventoryCollector()
    tracker = [("t.example", UNCLASSIFIED, "script", True)]
    both = [*tracker, ("u.example", UNCLASSIFIED, "img", False)]
    for path, sightings in [("/a", tracker), ("/a", list(tracker)), ("/b", both), ("/b", both), ("/a", tracker)]:
        collector.page_seen(path, sightings)
    counts = {entry.key: (entry.count, entry.held, entry.allowed) for entry in collector.drain()}
    assert counts == {"t.example": (5, 5, 0), "u.example": (2, 0, 2)}
    collector.page_seen("/a", tracker)  # the same page as just before the drain: counted anew, once
    assert [(entry.key, entry.count) for entry in collector.drain()] == [("t.example", 1)]


async def test_a_store_that_does_not_answer_keeps_the_batch_for_the_next_flush(tmp_path: Path) -> None:
    log: ConsentLog = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    collector = InventoryCollector()
    flusher = InventoryFlusher(log, collector, interval_s=0)
    collector.page_seen("/a", [("t.example", UNCLASSIFIED, "script", True)])
    with pytest.raises(StoreUnavailable):
        await flusher.flush()  # not opened: the store refuses
    collector.page_seen("/b", [("t.example", UNCLASSIFIED, "img", False)])
    await log.open()
    try:
        assert await flusher.flush() == 1
        (entry,) = (await log.read_inventory(InventoryQuery())).entries
        assert (entry.count, entry.held, entry.allowed, entry.samples) == (2, 1, 1, ("/a", "/b"))
        assert len(collector) == 0
    finally:
        await log.close()


async def test_the_flusher_runs_periodically_and_flushes_at_stop(tmp_path: Path) -> None:
    log: ConsentLog = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    collector = InventoryCollector()
    flusher = InventoryFlusher(log, collector, interval_s=0.05)
    try:
        flusher.start()
        collector.csp_violation("a.example", "img-src", "/", "none")
        await asyncio.sleep(0.3)
        assert (await log.read_inventory(InventoryQuery())).total == 1
        collector.csp_violation("b.example", "img-src", "/", "none")
        await flusher.stop()
        assert (await log.read_inventory(InventoryQuery())).total == 2
    finally:
        await log.close()
