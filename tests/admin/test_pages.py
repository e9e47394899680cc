"""What the privacy team sees: charts with text alternatives, search, detail, history, integrity, cookies."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from datetime import UTC, datetime

from starlette.testclient import TestClient

from consent_gateway.config import Config
from consent_gateway.events import EventChain
from consent_gateway.inventory.records import COOKIE, InventoryEntry, key_of
from consent_gateway.store import ConsentLog
from consent_gateway.store.proof import CheckpointWriter, load_checkpoint_key

from .conftest import AUDITOR_PASSWORD, NOW, PREFIX, VISITOR, csrf_of, login, make_events


def _in_last_30_days() -> list[object]:
    first = datetime(2026, 2, 9, tzinfo=UTC).timestamp() * 1000
    end = datetime(2026, 3, 11, tzinfo=UTC).timestamp() * 1000
    return [e for e in make_events() if first <= e.timestamp_ms < end]


def test_the_overview_shows_each_chart_as_an_image_with_a_text_alternative(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/").text
    charts = ("chart-day", "chart-country", "chart-browser", "chart-device", "chart-policy_version", "chart-vendor")
    for chart_id in (*charts, "chart-day-visitors"):
        svg = re.search(rf'<svg class="chart" id="{chart_id}"[^>]*>', page)
        assert svg and 'role="img"' in svg.group(0), chart_id
        assert f'aria-labelledby="{chart_id}-title {chart_id}-desc"' in svg.group(0)
        unit = "visitors whose last choice of the day" if chart_id == "chart-day-visitors" else "consent events"
        assert re.search(rf'<desc id="{chart_id}-desc">Share of {unit}', page), chart_id
    assert page.count("Show the data as a table") == 7
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched elsewhere


def test_the_overview_figures_match_the_log(logged_in: TestClient) -> None:
    events = _in_last_30_days()
    granted = sum(1 for e in events if e.categories["analytics"])  # type: ignore[attr-defined]
    page = logged_in.get(f"{PREFIX}/").text
    assert f'<p class="figure">{len(events):,}</p><p>consent events</p>' in page
    card = (
        f'{100 * granted / len(events):.0f}%</p><p>granted Analytics <span class="muted">({granted} of {len(events)})'
    )
    assert card in page
    fr = [e for e in events if e.country == "FR"]  # type: ignore[attr-defined]
    fr_marketing = sum(1 for e in fr if e.categories["marketing"])  # type: ignore[attr-defined]
    # columns: events, then the categories in order (analytics, session-replay, marketing…)
    row = re.search(r'<tr><th scope="row">FR</th><td>(\d+)</td>\s*<td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', page)
    assert row and int(row.group(1)) == len(fr)
    assert row.group(2) == f"{100 * fr_marketing / len(fr):.0f}%"


def test_the_overview_shows_visitors_per_day_and_each_vendors_grant_rate(logged_in: TestClient) -> None:
    events = _in_last_30_days()
    page = logged_in.get(f"{PREFIX}/").text
    visitors = len({(e.consent_id, e.timestamp_ms // 86_400_000) for e in events})  # type: ignore[attr-defined]
    assert f'<p class="figure">{visitors:,}</p><p>visitors' in page
    youtube = [e.vendors["youtube"] for e in events if "youtube" in e.vendors]  # type: ignore[attr-defined]
    row = re.search(r'<tr><th scope="row">youtube</th><td>(\d+)</td>\s*<td>([^<]*)</td>', page)
    assert row and int(row.group(1)) == len(youtube)
    assert row.group(2) == f"{100 * sum(youtube) / len(youtube):.0f}%"
    day = datetime.fromtimestamp(events[0].timestamp_ms / 1000, UTC).date().isoformat()  # type: ignore[attr-defined]
    on_day = [e for e in events if datetime.fromtimestamp(e.timestamp_ms / 1000, UTC).date().isoformat() == day]  # type: ignore[attr-defined]
    assert f'<tr><th scope="row">{day}</th><td>{len(on_day)}</td><td>{len(on_day)}</td>' in page


def test_the_overview_shows_each_rate_per_event_and_per_visitor(logged_in: TestClient) -> None:
    """The visitor with a history grants, refuses, then withdraws on 9 March: three events, one of which
    granted analytics, but one visitor who ends the day refusing it."""
    events = _in_last_30_days()
    latest: dict[tuple[str, int], object] = {}
    for e in sorted(events, key=lambda e: (e.timestamp_ms, e.event_id)):  # type: ignore[attr-defined]
        latest[(e.consent_id, e.timestamp_ms // 86_400_000)] = e  # type: ignore[attr-defined]
    granted = sum(1 for e in latest.values() if e.categories["analytics"])  # type: ignore[attr-defined]
    assert len(latest) == len(events) - 2 and granted == sum(1 for e in events if e.categories["analytics"]) - 1  # type: ignore[attr-defined]
    page = logged_in.get(f"{PREFIX}/").text
    card = (
        f'<strong>{100 * granted / len(latest):.0f}%</strong> of visitors <span class="muted">({granted} of'
        f" {len(latest)}, each visitor counted once a day)</span>"
    )
    assert card in page
    assert "How these figures are counted" in page and "counts once, as refusing" in page
    # the per-visitor table: on 9 March the visitor with a history counts once, as refusing
    on_ninth = [e for (_, day), e in latest.items() if day == datetime(2026, 3, 9, tzinfo=UTC).timestamp() // 86_400]
    ninth_granted = sum(1 for e in on_ninth if e.categories["analytics"])  # type: ignore[attr-defined]
    row = re.search(r'<h2 id="h-day-visitors">.*?<tr><th scope="row">2026-03-09</th>\s*<td>([^<]*)</td>', page, re.S)
    assert row and row.group(1) == f"{100 * ninth_granted / len(on_ninth):.0f}% ({len(on_ninth)})"

    data = logged_in.get(f"{PREFIX}/overview.json").json()
    analytics = data["categories"]["analytics"]
    rate = round(granted / len(latest), 4)
    assert analytics["per_visitor"] == {"granted": granted, "total": len(latest), "rate": rate}
    assert analytics["per_event"]["total"] == len(events)
    ninth = next(d for d in data["days"] if d["day"] == "2026-03-09")
    assert ninth["per_visitor"]["analytics"] == {
        "granted": ninth_granted,
        "total": len(on_ninth),
        "rate": round(ninth_granted / len(on_ninth), 4),
    }
    assert ninth["visitors"] == len(on_ninth) and ninth["events"] == len(on_ninth) + 2
    assert (data["first_day"], data["last_day"], data["visitor_days"]) == ("2026-02-09", "2026-03-10", len(latest))


def test_the_overview_period_can_be_changed(logged_in: TestClient) -> None:
    page = logged_in.get(f"{PREFIX}/?days=7").text
    assert "Consent events from 2026-03-04 to 2026-03-10 (UTC)." in page
    assert '<a href="/_consent/admin/?days=7" aria-current="page">' in page
    assert "Consent events from 2026-02-09" in logged_in.get(f"{PREFIX}/?days=oops").text  # default 30


def test_the_event_search_pages_with_a_cursor(logged_in: TestClient) -> None:
    french = sorted((e for e in make_events() if e.country == "FR"), key=lambda e: (e.timestamp_ms, e.event_id))
    page = logged_in.get(f"{PREFIX}/events", params={"country": "FR"})
    assert f"{len(french)} matching events" in page.text
    assert "First page" not in page.text
    ids: list[str] = []
    while True:
        ids += re.findall(r'href="/_consent/admin/events/(ev-[^"]+)"', page.text)
        next_link = re.search(r'rel="next" href="([^"]+)"', page.text)
        if next_link is None:
            break
        page = logged_in.get(next_link.group(1).replace("&amp;", "&"))
        assert "First page" in page.text
    assert len(french) > 100  # three pages at least
    assert ids == [e.event_id for e in reversed(french)]


def test_a_bad_search_filter_is_explained_and_nothing_is_listed(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/events", params={"since": "31/12/2025", "device": "fridge"})
    assert response.status_code == 400
    assert "Use a date like 2025-03-31." in response.text and "Unknown device type." in response.text
    assert 'aria-invalid="true" aria-describedby="err-since"' in response.text
    assert "matching event" not in response.text


def test_the_search_narrows_to_the_minute_in_utc(logged_in: TestClient) -> None:
    start = datetime(2026, 2, 20, 9, 30, tzinfo=UTC).timestamp() * 1000
    end = datetime(2026, 2, 20, 14, 15, tzinfo=UTC).timestamp() * 1000 + 60_000  # the end minute included
    want = sorted((e for e in make_events() if start <= e.timestamp_ms < end), key=lambda e: e.timestamp_ms)
    params = {"since": "2026-02-20", "since_time": "09:30", "until": "2026-02-20", "until_time": "14:15"}
    page = logged_in.get(f"{PREFIX}/events", params=params).text
    assert 0 < len(want) < 10 and f"{len(want)} matching event" in page
    assert re.findall(r'href="/_consent/admin/events/(ev-[^"]+)"', page) == [e.event_id for e in reversed(want)]
    bad = logged_in.get(f"{PREFIX}/events", params={"until_time": "14:15", "since": "2026-02-20", "since_time": "9h"})
    assert bad.status_code == 400 and "Give the date too." in bad.text and "Use a time like 14:30 (UTC)." in bad.text


def test_a_privacy_officer_finds_a_visitor_by_ip_as_the_log_keeps_it(logged_in: TestClient) -> None:
    # the log keeps addresses truncated to /24 by default: a full address is searched as its network
    want = [e.event_id for e in make_events() if e.ip == "203.0.113.0"]
    page = logged_in.get(f"{PREFIX}/events", params={"ip": "203.0.113.99"}).text
    assert want and re.findall(r'href="/_consent/admin/events/(ev-[^"]+)"', page) == want[::-1]
    assert 'name="ip" value="203.0.113.0"' in page
    assert "Not an IP address." in logged_in.get(f"{PREFIX}/events", params={"ip": "dpo@example"}).text


def test_an_analyst_cannot_search_by_ip(client: TestClient) -> None:
    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 303  # type: ignore[attr-defined]
    assert 'name="ip"' not in client.get(f"{PREFIX}/events").text
    refused = client.get(f"{PREFIX}/events", params={"ip": "203.0.113.99"})
    assert refused.status_code == 400 and "Your role does not see IP addresses." in refused.text
    assert "203.0.113" not in refused.text.replace('value="203.0.113.99"', "")


def test_a_stale_cursor_falls_back_to_the_first_page(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/events", params={"cursor": "not-a-cursor"})
    assert response.status_code == 200
    assert "This page link is no longer valid" in response.text


def test_the_event_detail_shows_every_field(logged_in: TestClient, consent_log: ConsentLog) -> None:
    event = asyncio.run(consent_log.get("ev-0007"))
    assert event is not None
    page = logged_in.get(f"{PREFIX}/events/ev-0007").text
    for value in (event.consent_id, event.ip, event.user_agent, event.hash, event.country, event.browser_family):
        assert str(value) in page
    assert logged_in.get(f"{PREFIX}/events/nope").status_code == 404


def test_a_visitors_history_is_listed_oldest_first_with_its_downloads(logged_in: TestClient) -> None:
    found = logged_in.get(f"{PREFIX}/visitors", params={"consent_id": VISITOR})
    assert found.status_code == 303 and found.headers["location"] == f"{PREFIX}/visitors/{VISITOR}"
    page = logged_in.get(found.headers["location"]).text
    actions = re.findall(r'<strong class="action">([^<]+)</strong>', page)
    assert actions == ["consent-given", "consent-updated", "consent-withdrawn"]
    assert f"export.jsonl?consent_id={VISITOR}" in page
    assert logged_in.get(f"{PREFIX}/visitors/unknown-id").status_code == 404


def test_integrity_verifies_the_log_and_names_a_tampered_event(
    logged_in: TestClient, consent_log: ConsentLog, admin_config: Config
) -> None:
    page = logged_in.get(f"{PREFIX}/integrity")
    assert "test-instance" in page.text  # the chain head
    unproven = logged_in.post(f"{PREFIX}/integrity", data={"csrf_token": csrf_of(page.text)})
    assert "Not proven.</strong> No alteration found in" in unproven.text and "Verified." not in unproven.text
    assert "no checkpoint" in unproven.text  # says what could not be proven

    # A checkpoint signed with the gateway's key, covering every chain head: now proven.
    key = load_checkpoint_key(admin_config.data_path)
    asyncio.run(CheckpointWriter(consent_log, admin_config.checkpoint_path, key, interval_s=0).write_once())
    ok = logged_in.post(f"{PREFIX}/integrity", data={"csrf_token": csrf_of(page.text)})
    assert f"Verified.</strong> {len(make_events())} events in 1 chain are intact" in ok.text

    # Newer events than the checkpoint: not proven again.
    late_event = dataclasses.replace(make_events()[0], event_id="ev-late")
    asyncio.run(consent_log.append([EventChain("late-instance").append(late_event)]))
    late = logged_in.post(f"{PREFIX}/integrity", data={"csrf_token": csrf_of(page.text)})
    assert "Not proven." in late.text

    with sqlite3.connect(admin_config.store_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE events SET categories = ? WHERE event_id = ?", ('{"analytics": true}', "ev-0100"))
    broken = logged_in.post(f"{PREFIX}/integrity", data={"csrf_token": csrf_of(page.text)})
    assert "The log has been altered." in broken.text
    assert "First broken: <code>ev-0100</code>" in broken.text


def test_the_cookie_inventory_lists_what_the_stored_inventory_holds(
    logged_in: TestClient, consent_log: ConsentLog
) -> None:
    assert "No unknown cookie seen yet." in logged_in.get(f"{PREFIX}/cookies").text

    def cookie(name: str, vendor: str, *, passed: int = 0, dropped: int = 0) -> InventoryEntry:
        return InventoryEntry(COOKIE, key_of(name, "", "/"), name, vendor, count=passed + dropped, passed=passed,
                              dropped=dropped, detail={"domain": "", "path": "/"}, first_seen_ms=1, last_seen_ms=1)

    # what the instances' flushes wrote (every instance's, kept across restarts)
    asyncio.run(consent_log.merge_inventory([
        cookie("_hjSession", "", passed=3),
        cookie("<script>x", "", passed=1),
        cookie("_ga", "google-analytics", dropped=7),
    ]))  # fmt: skip
    page = logged_in.get(f"{PREFIX}/cookies").text
    assert '<th scope="row" class="mono">_hjSession</th><td></td><td></td><td>3</td>' in page
    assert "&lt;script&gt;x" in page and "<script>x" not in page
    assert '<th scope="row" class="mono">_ga</th><td></td><td>google-analytics</td><td>7</td>' in page
    assert page.index("_hjSession") < page.index("&lt;script&gt;x")  # largest count first


def test_an_unreachable_log_gives_a_503_page_not_a_traceback(logged_in: TestClient, consent_log: ConsentLog) -> None:
    asyncio.run(consent_log.close())
    try:
        page = logged_in.get(f"{PREFIX}/events")
        assert page.status_code == 503
        assert "The consent log cannot be reached right now." in page.text
        export = logged_in.get(f"{PREFIX}/export.csv")
        assert export.status_code == 503
        assert export.json()["error"]["code"] == "store_unavailable"
    finally:
        asyncio.run(consent_log.open())


def test_times_are_shown_in_utc(logged_in: TestClient) -> None:
    assert datetime.fromtimestamp(NOW, UTC).hour == 12
    page = logged_in.get(f"{PREFIX}/visitors/{VISITOR}").text
    assert "2026-03-09 10:00:00 UTC" in page


def test_the_event_detail_shows_the_archived_banner_it_was_shown(
    logged_in: TestClient, consent_log: ConsentLog, admin_config: Config
) -> None:
    from consent_gateway.banner import Banner
    from consent_gateway.catalog import Catalog

    event = asyncio.run(consent_log.get("ev-0007"))
    assert event is not None
    missing = logged_in.get(f"{PREFIX}/events/ev-0007").text
    assert "not in the archive" in missing
    banner = Banner(admin_config, Catalog.builtin())
    shown = dataclasses.replace(event, event_id="ev-shown", banner_version=banner.version)
    asyncio.run(consent_log.append([EventChain("other-instance").append(shown)]))
    asyncio.run(consent_log.archive_banner(banner.version, banner.archive_json))
    page = logged_in.get(f"{PREFIX}/events/ev-shown").text
    section = page[page.index('id="banner-shown"') :]
    assert "the archive hashes to this version" in section
    assert "Tout accepter" in section and "Accept all" in section
    assert "Mesure d&#39;audience" in section  # the category label as shown in French
    archived = logged_in.get(f"{PREFIX}/banners/{banner.version}.json")
    assert archived.status_code == 200 and archived.json() == banner.archive
    exported = logged_in.get(f"{PREFIX}/export.banners.json", params={"consent_id": event.consent_id}).json()
    assert exported["versions"][banner.version] == banner.archive
    assert exported["versions"][event.banner_version] is None  # recorded before the archive: said, not hidden
    assert logged_in.get(f"{PREFIX}/banners/nope.json").status_code == 404


def test_objections_recorded_by_visitors_are_flagged_on_the_overview(
    logged_in: TestClient, consent_log: ConsentLog
) -> None:
    assert 'id="objections"' not in logged_in.get(f"{PREFIX}/").text
    event = asyncio.run(consent_log.get("ev-0007"))
    assert event is not None
    objected = dataclasses.replace(
        event,
        event_id="ev-objected",
        action="processing-objected",
        categories=dict.fromkeys(event.categories, False),
        timestamp_ms=int(NOW * 1000) - 3_600_000,
    )
    asyncio.run(consent_log.append([EventChain("objecting").append(objected)]))
    page = logged_in.get(f"{PREFIX}/").text
    flag = re.search(r'<p class="notice" id="objections"><strong>(\d+)</strong>', page)
    assert flag and flag.group(1) == "1"
    listed = logged_in.get(f"{PREFIX}/events", params={"action": "processing-objected"}).text
    assert "ev-objected" in listed
