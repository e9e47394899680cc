"""The visitor's own space, /_consent/me, through the real gateway and the real SQLite log."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.banner import archive_version
from consent_gateway.config import Config, PolicyConfig
from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import DATA_ERASED, PROCESSING_OBJECTED, ConsentEvent
from consent_gateway.middleware import ConsentGateway
from consent_gateway.store import open_log
from consent_gateway.store.sqlite import SQLiteConsentLog
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def site() -> Starlette:
    return Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("<html><head></head>home</html>", media_type="text/html"))]
    )


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as test_client:
        yield test_client


def choose(client: TestClient, body: object) -> str:
    response = client.post("/_consent/choices", json=body, headers=SAME_ORIGIN)
    assert response.status_code == 200, response.text
    return str(response.json()["consent_id"])


def withdraw(client: TestClient) -> str:
    response = client.delete("/_consent/choices", headers=SAME_ORIGIN)
    assert response.status_code == 200, response.text
    return str(response.json()["consent_id"])


def shown_id(page: str) -> str | None:
    found = re.search(r'id="cg-me-id">([0-9a-f]+)<', page)
    return found[1] if found else None


def actions_listed(page: str) -> list[str]:
    return re.findall(r'<tr data-action="([a-z-]+)">', page)


def log_of(config: Config):  # type: ignore[no-untyped-def]
    return open_log(config.store_url)


async def _history(config: Config, consent_id: str):  # type: ignore[no-untyped-def]
    log = log_of(config)
    await log.open()
    try:
        return await log.history(consent_id), await log.verify()
    finally:
        await log.close()


def test_one_consent_id_across_a_withdrawal_and_a_policy_change(config: Config) -> None:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        first = choose(client, {"action": "accept_all"})
        assert withdraw(client) == first
        assert client.get("/_consent/state").json()["consent"] is None  # the choice is gone…
        assert choose(client, {"choices": {"analytics": True}}) == first  # …the id is not
        cookies = dict(client.cookies)
    newer = replace(config, policy=replace(PolicyConfig(), version="2"))
    with TestClient(ConsentGateway(site(), newer, secret_keys=TEST_SECRET_KEYS), cookies=cookies) as client:
        assert client.get("/_consent/state").json()["consent"] is None  # the new policy asks again
        receipt = client.get("/_consent/receipt")  # still the visitor's proof, with no choice in force
        assert receipt.status_code == 200 and receipt.json()["current"] is None
        assert choose(client, {"action": "reject_all"}) == first
        page = client.get("/_consent/me", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert shown_id(page.text) == first
    # newest first; a choice made while none was in force is a new consent under the same id
    assert actions_listed(page.text) == ["consent-given", "consent-given", "consent-withdrawn", "consent-given"]
    assert "Your consent data" in page.text


def test_an_old_policy_cookie_without_an_id_cookie_keeps_its_consent_id(config: Config) -> None:
    """Browsers that chose before the id cookie existed keep their history through a policy change."""
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        first = choose(client, {"action": "accept_all"})
        consent_only = {"cg_consent": client.cookies["cg_consent"]}
    newer = replace(config, policy=replace(PolicyConfig(), version="2"))
    with TestClient(ConsentGateway(site(), newer, secret_keys=TEST_SECRET_KEYS), cookies=consent_only) as client:
        assert choose(client, {"action": "accept_all"}) == first


def test_the_page_speaks_the_visitors_language_and_switches(client: TestClient) -> None:
    choose(client, {"action": "accept_all"})
    french = client.get("/_consent/me", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr">' in french.text and "Vos données de consentement" in french.text
    assert "Premier choix" in french.text and "Mesure d'audience" in html.unescape(french.text)
    english = client.get("/_consent/me?lang=en", headers={"Accept-Language": "fr-FR"})
    assert '<html lang="en">' in english.text and "First choice" in english.text
    # no script anywhere, and a policy that would refuse one
    assert "<script" not in french.text
    policy = french.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
    assert french.headers["cache-control"] == "no-store"


def test_a_forged_or_missing_cookie_shows_no_data(client: TestClient) -> None:
    choose(client, {"action": "accept_all"})
    real = client.cookies["cg_consent_id"]
    client.cookies.clear()
    assert shown_id(client.get("/_consent/me").text) is None
    assert client.get("/_consent/me/data.json").status_code == 404
    client.cookies.set("cg_consent_id", real[:-3] + "abc")  # a signature that does not verify
    client.cookies.set("cg_consent", "forged.value.sig")
    page = client.get("/_consent/me", headers={"Accept-Language": "en"})
    assert shown_id(page.text) is None and "No choice is recorded for this browser." in page.text
    assert client.get("/_consent/me/data.json").json()["error"]["code"] == "no_consent"
    assert client.get("/_consent/receipt").status_code == 404


def wait_for_archive(client: TestClient) -> dict[str, object]:
    """The banner archive runs in a task of its own: the download shows it once it is done."""
    deadline = time.monotonic() + 10
    while True:
        body = client.get("/_consent/me/data.json").json()
        if body["banner_versions"] or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_the_download_holds_the_history_the_banner_shown_and_a_dpv_record(client: TestClient) -> None:
    consent_id = choose(client, {"choices": {"analytics": True}})
    withdraw(client)
    response = client.get("/_consent/me/data.json")
    assert response.headers["content-disposition"] == f'attachment; filename="consent-{consent_id}.json"'
    body = wait_for_archive(client)
    events = body["events"]
    assert [e["action"] for e in events] == ["consent-given", "consent-withdrawn"]  # type: ignore[index]
    assert all("salts" not in e for e in events)  # type: ignore[union-attr]
    (version,) = {e["banner_version"] for e in events}  # type: ignore[index]
    shown = body["banner_versions"][version]  # type: ignore[index]
    # the archive proves its own version: its canonical JSON hashes to the version each event recorded
    assert archive_version(shown) == version
    assert shown["texts"]["fr"]["accept_all"] == "Tout accepter"
    assert shown["policy"]["version"] == "1"
    assert {c["id"] for c in shown["categories"]} >= {"necessary", "analytics", "session-replay"}
    assert any(v["id"] == "hotjar" for v in shown["vendors"])
    record = body["consent_record"]
    assert record["@type"] == "dpv:ConsentRecord" and record["dpv:hasIdentifier"] == consent_id
    statuses = {p["dct:identifier"]: p.get("dpv:hasConsentStatus") for p in record["dpv:hasPurpose"]}
    assert statuses["analytics"] == {"@id": "dpv:ConsentWithdrawn"}
    assert statuses["necessary"] is None  # needs no consent
    jsonld = client.get("/_consent/me/record.jsonld")
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert json.loads(jsonld.text)["dpv:hasIdentifier"] == consent_id


def test_erasure_removes_personal_fields_records_it_and_the_chain_still_verifies(
    client: TestClient, config: Config
) -> None:
    consent_id = choose(client, {"action": "accept_all"})
    client.get("/")  # a page: the banner archive starts
    unconfirmed = client.post("/_consent/me/erase", data={"consent_id": consent_id}, headers=SAME_ORIGIN)
    assert unconfirmed.status_code == 400
    assert "Tick the box" in unconfirmed.text or "Cochez" in unconfirmed.text
    response = client.post(
        "/_consent/me/erase",
        data={"consent_id": consent_id, "confirm": "yes"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/_consent/me?done=erased"
    cleared = [h for h in response.headers.get_list("set-cookie") if h.startswith(("cg_consent=", "cg_consent_id="))]
    assert cleared and all("Max-Age=0" in h for h in cleared)
    assert "cg_consent_id" not in client.cookies
    page = client.get(response.headers["location"], headers={"Accept-Language": "en"})
    assert "Your consent data was erased." in page.text and shown_id(page.text) is None
    events, verified = asyncio.run(_history(config, consent_id))
    assert [e.action for e in events] == ["consent-given", DATA_ERASED]
    assert events[0].ip is None and events[0].user_agent is None and events[0].erased_at_ms is not None
    assert events[1].ip is None and events[1].user_agent is None  # the proof of erasure holds nothing personal
    assert verified.ok, verified
    assert choose(client, {"action": "reject_all"}) != consent_id  # a new history from here


def test_an_objection_refuses_everything_optional_and_is_flagged(client: TestClient, config: Config) -> None:
    consent_id = choose(client, {"action": "accept_all"})
    response = client.post(
        "/_consent/me/object", data={"consent_id": consent_id}, headers=SAME_ORIGIN, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/_consent/me?done=objected"
    state = client.get("/_consent/state").json()["consent"]
    assert state["consent_id"] == consent_id and not any(state["choices"].values())
    events, _ = asyncio.run(_history(config, consent_id))
    assert events[-1].action == PROCESSING_OBJECTED and not any(events[-1].categories.values())


@pytest.mark.parametrize("path", ["/_consent/me/erase", "/_consent/me/object"])
def test_a_cross_site_post_is_403_and_changes_nothing(client: TestClient, config: Config, path: str) -> None:
    consent_id = choose(client, {"action": "accept_all"})
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response = client.post(path, data={"consent_id": consent_id, "confirm": "yes"}, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "cross_site_request"
    # a same-origin form that was not shown to this browser (no consent id, or another one) changes nothing
    stale = client.post(path, data={"consent_id": "0" * 32, "confirm": "yes"}, headers=SAME_ORIGIN)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale_form"
    events, _ = asyncio.run(_history(config, consent_id))
    assert [e.action for e in events] == ["consent-given"] and events[0].erased_at_ms is None
    assert client.get("/_consent/state").json()["consent"]["choices"]["marketing"] is True


class UnreadableLog(SQLiteConsentLog):
    """The real SQLite backend, whose reads of a history fail like a log that does not answer."""

    async def history(self, consent_id: str) -> list[ConsentEvent]:
        raise StoreUnavailable("the log does not answer")


def test_a_log_that_does_not_answer_still_shows_the_choice_and_the_forms(config: Config) -> None:
    log = UnreadableLog(config.store_url)
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS, log=log)) as client:
        consent_id = choose(client, {"action": "accept_all"})
        page = client.get("/_consent/me", headers={"Accept-Language": "en"})
        assert page.status_code == 503
        assert "Your history cannot be read right now" in page.text
        assert shown_id(page.text) == consent_id and "Allowed" in page.text  # the choice in force, from its cookie
        assert 'action="/_consent/me/erase?lang=en"' in page.text
        assert client.get("/_consent/me/data.json").json()["error"]["code"] == "store_unavailable"
