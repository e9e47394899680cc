"""The consent API under /_consent, through the real gateway and the real SQLite log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config, GatewayConfig, StoreConfig
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
DAY = 24 * 3600


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as test_client:
        yield test_client


def set_cookies(response) -> list[str]:  # type: ignore[no-untyped-def]
    return response.headers.get_list("set-cookie")


def consent_cookie(response) -> str:  # type: ignore[no-untyped-def]
    (header,) = [h for h in set_cookies(response) if h.startswith("cg_consent=")]
    return header


def post(client: TestClient, body: object, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/_consent/choices", json=body, headers={**SAME_ORIGIN, **headers})


def history(client: TestClient) -> list[dict[str, object]]:
    response = client.get("/_consent/receipt")
    assert response.status_code == 200, response.text
    return response.json()["events"]  # type: ignore[no-any-return]


def test_accept_all_sets_a_13_month_http_only_cookie_and_records_the_event(client: TestClient) -> None:
    response = post(client, {"action": "accept_all"}, Referer="http://testserver/blog?utm=x")
    assert response.status_code == 200
    body = response.json()
    assert body["choices"] == {
        "analytics": True, "session-replay": True, "marketing": True, "preferences": True, "unclassified": True
    }
    cookie = consent_cookie(response)
    assert f"Max-Age={395 * DAY}" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http in this test
    (event,) = history(client)
    assert event["action"] == "consent-given"
    assert event["consent_id"] == body["consent_id"]
    assert event["page_path"] == "/blog"  # the query is dropped by default
    assert event["categories"] == {
        "analytics": True, "session-replay": True, "marketing": True, "preferences": True, "unclassified": True
    }


def test_reject_all_keeps_the_refusal_6_months(client: TestClient) -> None:
    response = post(client, {"action": "reject_all"})
    assert response.status_code == 200
    assert response.json()["choices"] == {
        "analytics": False, "session-replay": False, "marketing": False, "preferences": False, "unclassified": False
    }
    assert f"Max-Age={182 * DAY}" in consent_cookie(response)


def test_explicit_choices_leave_the_rest_unticked_and_update_keeps_the_id(client: TestClient) -> None:
    first = post(client, {"choices": {"analytics": True}}).json()
    assert first["choices"] == {
        "analytics": True, "session-replay": False, "marketing": False, "preferences": False, "unclassified": False
    }
    second = post(client, {"choices": {"analytics": True, "marketing": True}, "vendors": {"youtube": False}}).json()
    assert second["consent_id"] == first["consent_id"]
    assert second["vendors"] == {"youtube": False}
    assert [e["action"] for e in history(client)] == ["consent-given", "consent-updated"]


def test_state_reports_the_current_choice(client: TestClient) -> None:
    assert client.get("/_consent/state").json()["consent"] is None
    post(client, {"choices": {"analytics": True}})
    state = client.get("/_consent/state").json()
    assert state["consent"]["choices"]["analytics"] is True
    assert state["policy_version"] == "1"


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({"choices": {"advertising": True}}, "unknown_category", "advertising"),
        ({"choices": {"analytics": "yes"}}, "invalid_type", "analytics"),
        ({"choices": {"necessary": False}}, "required_category", "necessary"),
        ({"choices": {"analytics": True}, "vendors": {"nosuchvendor": True}}, "unknown_vendor", "nosuchvendor"),
        ({"action": "accept_some"}, "invalid_action", "accept_some"),
        ({"choices": {}, "extra": 1}, "unknown_field", "extra"),
        (["analytics"], "invalid_type", "object"),
    ],
)
def test_bad_choices_are_400_naming_the_problem_and_change_nothing(
    client: TestClient, body: object, code: str, named: str
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert named in error["message"]
    assert set_cookies(response) == []
    assert client.get("/_consent/receipt").status_code == 404


def test_malformed_json_and_wrong_media_type(client: TestClient) -> None:
    bad = client.post(
        "/_consent/choices", content=b"{not json", headers={**SAME_ORIGIN, "Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"
    form = client.post("/_consent/choices", data={"action": "accept_all"}, headers=SAME_ORIGIN)
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"


def test_oversized_body_is_413(client: TestClient) -> None:
    body = json.dumps({"choices": {"analytics": True}, "referrer": "x" * 20_000})
    response = client.post(
        "/_consent/choices", content=body, headers={**SAME_ORIGIN, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
)
def test_cross_site_changes_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/_consent/choices", json={"action": "accept_all"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_site_request"
    assert set_cookies(response) == []
    withdraw = client.delete("/_consent/choices", headers=headers)
    assert withdraw.status_code == 403


def test_same_origin_by_origin_header_is_accepted(client: TestClient) -> None:
    response = client.post("/_consent/choices", json={"action": "reject_all"}, headers={"Origin": "http://testserver"})
    assert response.status_code == 200


def test_forged_cookie_is_no_consent_not_an_error(client: TestClient) -> None:
    client.cookies.set("cg_consent", "eyJpZCI6ImZvcmdlZCJ9.Zz4mAA.aGFja2Vk")
    state = client.get("/_consent/state")
    assert state.status_code == 200 and state.json()["consent"] is None
    assert client.get("/").text == "home"
    assert metrics.value("consent_cookie_rejected_total", reason="bad_signature") >= 1


def test_withdrawal_clears_the_consent_and_expires_tracker_cookies_on_parent_domains(config: Config) -> None:
    app = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(app, base_url="http://www.shop.example.org") as client:
        post(client, {"action": "accept_all"})
        client.cookies.set("_ga", "GA1.1.1.1", domain="www.shop.example.org")
        client.cookies.set("session", "keep-me", domain="www.shop.example.org")
        response = client.delete("/_consent/choices", headers=SAME_ORIGIN)
        assert response.status_code == 200 and response.json()["withdrawn"] is True
        headers = set_cookies(response)
        assert any(h.startswith("cg_consent=") and "Max-Age=0" in h for h in headers)
        expired = [h for h in headers if h.startswith("_ga=")]
        assert "_ga=; Max-Age=0; Path=/" in expired
        assert "_ga=; Max-Age=0; Path=/; Domain=shop.example.org" in expired
        assert "_ga=; Max-Age=0; Path=/; Domain=example.org" in expired
        assert not any(h.startswith("session=") for h in headers)  # not a tracker: left alone
        actions = [e["action"] for e in app_history(app, response.json()["consent_id"])]
        assert actions == ["consent-given", "consent-withdrawn"]


def app_history(app: ConsentGateway, consent_id: str) -> list[dict[str, object]]:
    import asyncio

    from consent_gateway.events import event_to_dict

    async def read() -> list[dict[str, object]]:
        return [event_to_dict(e) for e in await app.log.history(consent_id)]

    return asyncio.run(read())


def test_narrowing_consent_expires_the_refused_categories_cookies(client: TestClient) -> None:
    post(client, {"action": "accept_all"})
    client.cookies.set("_fbp", "fb.1.2.3")
    client.cookies.set("_ga", "GA1.1.1.1")
    response = post(client, {"choices": {"analytics": True, "marketing": False}})
    expired = [h for h in set_cookies(response) if "Max-Age=0" in h]
    assert any(h.startswith("_fbp=") for h in expired)
    assert not any(h.startswith("_ga=") for h in expired)


def test_gpc_refuses_marketing_on_accept_all_and_records_it(client: TestClient) -> None:
    response = post(client, {"action": "accept_all"}, **{"Sec-GPC": "1"})
    assert response.json()["choices"] == {
        "analytics": True, "session-replay": True, "marketing": False, "preferences": True, "unclassified": True
    }
    (event,) = history(client)
    assert event["action"] == "gpc-applied" and event["gpc"] is True


def test_events_carry_the_banner_version_a_parsed_browser_and_a_truncated_ip(config: Config) -> None:
    app = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(app, client=("203.0.113.77", 50000)) as client:
        ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        post(client, {"action": "reject_all"}, **{"User-Agent": ua})
        (event,) = history(client)
    assert event["banner_version"] == app.banner.version
    assert event["browser_family"] == "Firefox" and event["device_type"] == "desktop"
    assert event["ip"] == "203.0.113.0"  # truncated to /24 before it reaches the log
    assert event["instance_id"] == "test"


def test_no_proof_no_yes(tmp_path: Path) -> None:
    """With neither the log nor the spool writable, a grant is refused (503, no cookie); a refusal still works."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    config = replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / "data"), instance_id="t"),
        store=StoreConfig(
            url=f"sqlite:///{blocker}/consent.db", spool_path=str(blocker / "spool"), timeout_seconds=0.5
        ),
    )
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        grant = post(client, {"choices": {"analytics": True}})
        assert grant.status_code == 503
        assert grant.json()["error"]["code"] == "consent_not_recorded"
        assert set_cookies(grant) == []
        refusal = post(client, {"action": "reject_all"})
        assert refusal.status_code == 200
        assert refusal.json()["recorded"] is False
        assert consent_cookie(refusal)
        assert client.get("/_consent/health").json()["status"] == "degraded"


def test_receipt_without_consent_is_404_json(client: TestClient) -> None:
    response = client.get("/_consent/receipt")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_consent"


def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    missing = client.get("/_consent/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.put("/_consent/choices", json={})
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_health_and_metrics(client: TestClient) -> None:
    health = client.get("/_consent/health").json()
    assert health["status"] == "ok" and health["spool_depth"] == 0
    post(client, {"action": "accept_all"})
    text = client.get("/_consent/metrics").text
    assert 'consent_gateway_consent_events_total{action="consent-given"} 1' in text
    assert 'consent_gateway_consent_grants_total{category="analytics"} 1' in text


def test_banner_files_are_versioned_and_long_cached(client: TestClient) -> None:
    gateway = client.app
    version = gateway.banner.version  # type: ignore[attr-defined]
    js = client.get(f"/_consent/banner.js?v={version}")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"]
    data = client.get(f"/_consent/banner-data.js?v={version}")
    assert data.status_code == 200 and data.text.startswith("window.cgBannerData={")
    assert "Tout accepter" in data.text and "immutable" in data.headers["cache-control"]
    css = client.get(f"/_consent/banner.css?v={version}")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    unversioned = client.get("/_consent/banner.js")
    assert "immutable" not in unversioned.headers["cache-control"]
    assert client.get("/_consent/banner.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("region", ["opt-in", "opt-out"])
def test_a_first_reject_all_expires_every_known_tracker_cookie_on_the_host_and_its_parents(
    config: Config, region: str
) -> None:
    from consent_gateway.config import RegionsConfig

    config = replace(config, regions=RegionsConfig(default=region, unknown=region))
    app = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(app, base_url="http://www.shop.example.org") as fresh:
        # cookies trackers set before any choice (opt-out region, or an old consent the policy change voided)
        for name in ("_ga", "_fbp", "_hjSessionUser_1", "ln_or", "site_session"):
            fresh.cookies.set(name, "1")
        response = post(fresh, {"action": "reject_all"})
    expired = {h.split("=", 1)[0] for h in set_cookies(response) if "Max-Age=0" in h}
    # catalog patterns (_ga, _fbp, Hotjar's prefix) and an Open Cookie Database name (LinkedIn's ln_or)
    assert {"_ga", "_fbp", "_hjSessionUser_1", "ln_or"} <= expired
    assert "site_session" not in expired  # the site's own cookie is not a tracker's
    ga = [h for h in set_cookies(response) if h.startswith("_ga=")]
    assert {"Domain=shop.example.org", "Domain=example.org"} <= {p.strip() for h in ga for p in h.split(";")}


def test_a_vendor_granted_by_name_keeps_its_cookies_when_its_category_is_refused(client: TestClient) -> None:
    client.cookies.set("_ga", "GA1.1.1.1")
    client.cookies.set("_pk_id.1.abcd", "x")
    response = post(client, {"choices": {"analytics": False}, "vendors": {"google-analytics": True}})
    expired = {h.split("=", 1)[0] for h in set_cookies(response) if "Max-Age=0" in h}
    assert "_ga" not in expired and "_pk_id.1.abcd" in expired


@pytest.mark.parametrize("honour_dnt", [True, False])
def test_do_not_track_refuses_marketing_on_accept_all_where_honoured(config: Config, honour_dnt: bool) -> None:
    from consent_gateway.config import PrivacyConfig

    config = replace(config, privacy=replace(PrivacyConfig(), honour_dnt=honour_dnt))
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as fresh:
        response = post(fresh, {"action": "accept_all"}, DNT="1")
        assert response.json()["choices"]["marketing"] is not honour_dnt
        assert response.json()["choices"]["analytics"] is True
        (event,) = history(fresh)
    assert (event["action"] == "gpc-applied") is honour_dnt


def test_withdrawal_asks_the_reloaded_page_to_run_the_cleaner(client: TestClient) -> None:
    post(client, {"action": "accept_all"})
    response = client.delete("/_consent/choices", headers=SAME_ORIGIN)
    (marker,) = [h for h in set_cookies(response) if h.startswith("cg_clean=")]
    assert "Max-Age=120" in marker and "HttpOnly" not in marker  # the cleaner drops it once it ran
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
