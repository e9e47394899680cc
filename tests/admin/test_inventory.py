"""The dashboard's inventory: what the site uses, classified in one step, audited, exported as config; and the
enforcement page's loads without consent."""

from __future__ import annotations

import asyncio
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from consent_gateway.config import Config, parse_config
from consent_gateway.inventory.records import COOKIE, HOST, STORAGE, VIOLATION, InventoryEntry, key_of
from consent_gateway.site_rules import OVERLAY_DOCUMENT
from consent_gateway.store import ConsentLog
from consent_gateway.thirdparty import site_catalog

from .conftest import API_TOKEN, NOW, PREFIX, csrf_of, login

SEEN_MS = int(NOW * 1000) - 3_600_000
ORIGIN = {"Origin": "http://testserver"}


def entry(kind: str, key: str, name: str, vendor: str, **detail: object) -> InventoryEntry:
    return InventoryEntry(kind, key, name, vendor, count=7, held=5, allowed=2, element_kinds=1,
                          samples=("/", "/shop"), detail=dict(detail), first_seen_ms=SEEN_MS - 86_400_000,
                          last_seen_ms=SEEN_MS)


@pytest.fixture(autouse=True)
def seeded(consent_log: ConsentLog) -> None:
    asyncio.run(consent_log.merge_inventory([
        entry(HOST, "www.google-analytics.com", "www.google-analytics.com", "google-analytics"),
        entry(HOST, "cdn.newtracker.example", "cdn.newtracker.example", "unclassified"),
        entry(COOKIE, key_of("cart", "", "/"), "cart", "", domain="", path="/", max_age_s=86_400, http_only=True),
        entry(STORAGE, key_of("localStorage", "nt_queue"), "nt_queue", "", area="localStorage"),
        entry(STORAGE, key_of("cookie", "nt_script_id"), "nt_script_id", "", area="cookie"),
        entry(VIOLATION, key_of("evil.tracker.example", "script-src-elem", "/article", "none"),
              "evil.tracker.example", "unclassified", directive="script-src-elem", page_path="/article",
              consent_state="none"),
    ]))  # fmt: skip


def row_of(html: str, name: str) -> str:
    start = html.index(f'data-name="{name}"')
    return html[start : html.index("</tr>", start)]


def classify(client: TestClient, csrf: str, **fields: str) -> object:
    return client.post(f"{PREFIX}/inventory/classify", data={"csrf_token": csrf, **fields}, headers=ORIGIN)


def version(log: ConsentLog) -> int:
    return asyncio.run(log.document_version(OVERLAY_DOCUMENT))


def test_the_inventory_shows_hosts_cookies_and_names_with_their_vendor(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/inventory")
    assert page.status_code == 200
    ga = row_of(page.text, "www.google-analytics.com")
    assert "Google Analytics" in ga and "5 / 2" in ga and "2026-03-10 11:00" in ga and "Analytics" in ga
    tracker = row_of(page.text, "cdn.newtracker.example")
    assert "unclassified" in tracker and 'action="/_consent/admin/inventory/classify"' in tracker
    assert "1 day" in row_of(page.text, "cart") and "HttpOnly" in row_of(page.text, "cart")
    assert "localStorage" in row_of(page.text, "nt_queue")
    assert 'name="kind" value="storage"' in row_of(page.text, "nt_queue")
    # a cookie a script set, reported by the browser, is classified as a cookie (the filter and cleaner use it)
    assert 'name="kind" value="cookie"' in row_of(page.text, "nt_script_id")
    only = logged_in.get(f"{PREFIX}/inventory?show=unclassified").text
    assert 'data-name="cdn.newtracker.example"' in only and 'data-name="www.google-analytics.com"' not in only


def test_a_host_classified_in_one_step_is_audited_stored_and_exported_as_config(
    logged_in: TestClient, consent_log: ConsentLog, admin_config: Config
) -> None:
    csrf = csrf_of(logged_in.get(f"{PREFIX}/inventory").text)
    done = classify(logged_in, csrf, kind="host", subject="cdn.newtracker.example", action="new-vendor",
                    vendor_name="New Tracker", category="marketing", policy_url="https://newtracker.example/privacy")
    assert done.status_code == 303 and done.headers["location"].startswith(f"{PREFIX}/inventory?done=")  # type: ignore[attr-defined]
    page = logged_in.get(done.headers["location"]).text  # type: ignore[attr-defined]
    tracker = row_of(page, "cdn.newtracker.example")
    assert "New Tracker" in tracker and "Marketing" in tracker and "new vendor" in tracker and "Undo" in tracker
    # the cookie goes to the new vendor, the storage key is essential
    assert classify(logged_in, csrf, kind="cookie", subject="cart", action="vendor", vendor_id="new-tracker",
                    lifetime="1 day").status_code == 303  # type: ignore[attr-defined]
    assert classify(logged_in, csrf, kind="storage", subject="nt_queue", action="essential",
                    reason="Keeps the basket offline").status_code == 303  # type: ignore[attr-defined]
    assert version(consent_log) == 3

    lines = [json.loads(line) for line in Path(admin_config.admin.audit_log).read_text().splitlines()]
    classified = [line for line in lines if line["action"] == "classify"]
    assert [line["target"] for line in classified] == ["host:cdn.newtracker.example", "cookie:cart",
                                                       "storage:nt_queue"]
    assert classified[0]["user"] == "dpo" and classified[0]["decision"] == "new-vendor"

    exported = logged_in.get(f"{PREFIX}/inventory/export.toml")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    tables = tomllib.loads(exported.text)["vendors"]
    config = parse_config({"vendors": tables})  # the config accepts it as it is
    vendor = site_catalog(replace(admin_config, vendors=config.vendors)).vendor_for_set_cookie("cart")
    assert vendor is not None and vendor.id == "new-tracker" and vendor.policy_url.endswith("/privacy")

    decisions = logged_in.get(f"{PREFIX}/inventory").text.split('id="decisions"', 1)[1].split("</table>", 1)[0]
    assert decisions.count("<tr>") == 3 + 1 and "Keeps the basket offline" in decisions and "dpo" in decisions
    data = logged_in.get(f"{PREFIX}/inventory.json").json()
    host = next(h for h in data["hosts"] if h["name"] == "cdn.newtracker.example")
    assert (host["vendor"], host["category"], host["classification"]) == ("new-tracker", "marketing", "new-vendor")
    assert {d["subject"] for d in data["classifications"]} == {"cdn.newtracker.example", "cart", "nt_queue"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "host", "subject": "cdn.newtracker.example", "action": "vendor", "vendor_id": "nobody"},
         "no vendor"),
        ({"kind": "host", "subject": "cdn.newtracker.example", "action": "essential", "reason": ""}, "is required"),
        ({"kind": "host", "subject": "cdn.newtracker.example", "action": "new-vendor", "vendor_name": "Hotjar",
          "category": "marketing"}, "already in the catalog"),
        ({"kind": "cookie", "subject": "a b", "action": "essential", "reason": "x"}, "not a cookie name"),
    ],
)
def test_a_bad_classification_is_explained_and_changes_nothing(
    logged_in: TestClient, consent_log: ConsentLog, admin_config: Config, fields: dict[str, str], message: str
) -> None:
    csrf = csrf_of(logged_in.get(f"{PREFIX}/inventory").text)
    refused = classify(logged_in, csrf, **fields)
    assert refused.status_code == 400 and message in refused.text  # type: ignore[attr-defined]
    assert version(consent_log) == 0
    audit = Path(admin_config.admin.audit_log).read_text()
    assert '"action":"classify"' not in audit


def test_a_classification_without_the_forms_token_or_from_another_site_is_refused(
    logged_in: TestClient, consent_log: ConsentLog
) -> None:
    fields = {"kind": "host", "subject": "cdn.newtracker.example", "action": "essential", "reason": "x"}
    assert logged_in.post(f"{PREFIX}/inventory/classify", data=fields, headers=ORIGIN).status_code == 403
    csrf = csrf_of(logged_in.get(f"{PREFIX}/inventory").text)
    cross = logged_in.post(f"{PREFIX}/inventory/classify", data={"csrf_token": csrf, **fields},
                           headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert version(consent_log) == 0


def test_an_analyst_reads_the_inventory_but_cannot_classify(client: TestClient, consent_log: ConsentLog) -> None:
    from .conftest import AUDITOR_PASSWORD

    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 303  # type: ignore[attr-defined]
    page = client.get(f"{PREFIX}/inventory")
    assert page.status_code == 200 and "cdn.newtracker.example" in page.text
    assert 'action="/_consent/admin/inventory/classify"' not in page.text
    refused = classify(client, csrf_of(page.text), kind="host", subject="cdn.newtracker.example",
                       action="essential", reason="x")
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert version(consent_log) == 0
    token = client.get(f"{PREFIX}/inventory.json", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert token.status_code == 200 and token.json()["size"]["unclassified_hosts"] == 1


def test_a_classification_that_cannot_be_audited_is_refused(
    logged_in: TestClient, consent_log: ConsentLog, admin_config: Config
) -> None:
    csrf = csrf_of(logged_in.get(f"{PREFIX}/inventory").text)
    path = Path(admin_config.admin.audit_log)
    path.unlink()
    path.mkdir()
    refused = classify(logged_in, csrf, kind="host", subject="cdn.newtracker.example", action="essential",
                       reason="Payment form")
    assert refused.status_code == 503  # type: ignore[attr-defined]
    assert version(consent_log) == 0


def test_undo_removes_the_classification(logged_in: TestClient, consent_log: ConsentLog) -> None:
    csrf = csrf_of(logged_in.get(f"{PREFIX}/inventory").text)
    classify(logged_in, csrf, kind="host", subject="cdn.newtracker.example", action="essential", reason="Payments")
    assert "essential" in row_of(logged_in.get(f"{PREFIX}/inventory").text, "cdn.newtracker.example")
    undone = logged_in.post(f"{PREFIX}/inventory/unclassify", headers=ORIGIN,
                            data={"csrf_token": csrf, "kind": "host", "subject": "cdn.newtracker.example"})
    assert undone.status_code == 303
    assert "Classify" in row_of(logged_in.get(f"{PREFIX}/inventory").text, "cdn.newtracker.example")
    again = logged_in.post(f"{PREFIX}/inventory/unclassify", headers=ORIGIN,
                           data={"csrf_token": csrf, "kind": "host", "subject": "cdn.newtracker.example"})
    assert again.status_code == 400


def test_the_enforcement_page_lists_loads_without_consent(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/enforcement")
    assert page.status_code == 200
    row = row_of(page.text, "evil.tracker.example")
    for cell in ("/article", "script-src-elem", "none", ">7<", "unclassified"):
        assert cell in row
    # classified from there in one step, back on the same page
    csrf = csrf_of(page.text)
    assert 'action="/_consent/admin/inventory/classify"' in row
    done = classify(logged_in, csrf, kind="host", subject="evil.tracker.example", action="vendor",
                    vendor_id="hotjar", back="enforcement")
    assert done.headers["location"].startswith(f"{PREFIX}/enforcement?done=")  # type: ignore[attr-defined]
    assert "Hotjar" in row_of(logged_in.get(f"{PREFIX}/enforcement").text, "evil.tracker.example")
    data = logged_in.get(f"{PREFIX}/enforcement.json").json()
    assert data["violations"][0]["page_path"] == "/article" and data["violations"][0]["count"] == 7
