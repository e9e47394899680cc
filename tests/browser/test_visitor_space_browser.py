"""A real Chromium on the visitor's own space (/_consent/me) and the dashboard's proof of what was shown.

Two gateways in front of the demo site share one consent log and one signing key: the first under policy
version 1, the second under version 2 (a policy change as the visitor lives it: same host, and cookies
ignore the port, so the browser carries its cookies from one to the other).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from consent_gateway.banner import archive_version
from consent_gateway.config import AdminConfig, AdminUser, Config, PolicyConfig, PrivacyConfig
from tests.admin.conftest import DPO_PASSWORD, FAST_ARGON2

from .conftest import SECRET_KEYS, Visit, gateway_config, serve

pytestmark = pytest.mark.browser

FR_ACCEPT, FR_REJECT, FR_REOPEN, FR_WITHDRAW = (
    "Tout accepter",
    "Tout refuser",
    "Gérer les cookies",
    "Retirer mon consentement",
)


@dataclass
class Gateways:
    first: str  # policy version 1, with the dashboard
    second: str  # policy version 2, with the public statistics page


def _config(data: Path, instance: str, policy: str, **privacy: Any) -> Config:
    base = gateway_config(data)
    admin = AdminConfig(
        users=(AdminUser(name="dpo", password_hash=FAST_ARGON2.hash(DPO_PASSWORD), role="privacy-officer"),),
        audit_log=str(data / "admin-audit.jsonl"),
    )
    return replace(
        base,
        gateway=replace(base.gateway, instance_id=instance),
        policy=replace(PolicyConfig(), version=policy),
        privacy=replace(PrivacyConfig(), **privacy),
        admin=admin,
    )


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    from consent_gateway.demo import build_demo_site, bypass_for_vendor_hosts
    from consent_gateway.middleware import ConsentGateway

    data = tmp_path_factory.mktemp("visitor-space")
    first = _config(data, "visitor-space-1", "1")
    second = _config(data, "visitor-space-2", "2", public_statistics=True)
    site = build_demo_site()
    one = bypass_for_vendor_hosts(ConsentGateway(site, first, secret_keys=SECRET_KEYS), site)
    two = bypass_for_vendor_hosts(ConsentGateway(site, second, secret_keys=SECRET_KEYS), site)
    with serve(one) as url_one, serve(two) as url_two:
        yield Gateways(url_one, url_two)


@pytest.fixture
def french(visit: Callable[..., Visit]) -> Callable[[str], Visit]:
    return lambda base_url: visit(base_url=base_url, locale="fr-FR", accept_downloads=True)


def _button(v: Visit, name: str) -> Any:
    return v.page.get_by_role("button", name=name, exact=True)


def _choose(v: Visit, name: str) -> None:
    """Click a banner button and wait until the gateway answered the choice."""
    with v.page.expect_response(lambda r: "/_consent/choices" in r.url):
        _button(v, name).click()


def _history_actions(v: Visit) -> list[str]:
    return [row.get_attribute("data-action") or "" for row in v.page.locator("#cg-me-events tbody tr").all()]


def test_the_visitors_page_keeps_history_across_withdrawal_and_policy_change_downloads_and_erases(
    gateways: Gateways, french: Callable[[str], Visit], tmp_path: Path
) -> None:
    v = french(gateways.first)
    v.goto("/")
    _choose(v, FR_ACCEPT)
    _button(v, FR_REOPEN).click()
    # the banner's preferences link to the visitor's page, beside the consent id
    link = v.page.get_by_role("link", name="Voir et gérer mes données de consentement")
    assert (link.get_attribute("href") or "").endswith("/_consent/me")
    with v.page.expect_navigation():
        _button(v, FR_WITHDRAW).click()

    # the policy changes (second gateway, version 2): the banner asks again, the visitor refuses
    v.base_url = gateways.second
    v.goto("/")
    _choose(v, FR_REJECT)

    v.page.goto(f"{gateways.second}/_consent/me")
    page = v.page
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", name="Vos données de consentement").is_visible()
    consent_id = page.locator("#cg-me-id").inner_text()
    # newest first: one history under one consent id, across the withdrawal and both policy versions
    assert _history_actions(v) == ["consent-given", "consent-withdrawn", "consent-given"]
    policies = page.locator("#cg-me-events tbody tr td:nth-child(4)").all_inner_texts()
    assert policies == ["2", "1", "1"]
    assert "Consentement retiré" in page.locator("#cg-me-events").inner_text()

    with page.expect_download() as download:
        page.locator("#cg-me-json").click()
    saved = tmp_path / "mine.json"
    download.value.save_as(saved)
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["consent_id"] == consent_id
    assert [e["action"] for e in data["events"]] == ["consent-given", "consent-withdrawn", "consent-given"]
    assert all(e["consent_id"] == consent_id for e in data["events"])
    versions = {e["banner_version"] for e in data["events"]}
    assert len(versions) == 2  # the policy is part of what was shown: a second banner version
    for version in versions:
        shown = data["banner_versions"][version]
        assert archive_version(shown) == version
    assert {shown["policy"]["version"] for shown in data["banner_versions"].values()} == {"1", "2"}
    assert data["consent_record"]["dpv:hasIdentifier"] == consent_id

    page.get_by_role("button", name="Effacer mes données").click()  # not confirmed: nothing happens
    assert page.get_by_role("alert").inner_text() == "Cochez la case pour confirmer l'effacement."
    page.get_by_label("Je confirme l'effacement").check()
    page.get_by_role("button", name="Effacer mes données").click()
    assert "Vos données de consentement ont été effacées" in page.get_by_role("status").inner_text()
    assert page.locator("#cg-me-none").is_visible()
    assert not {"cg_consent", "cg_consent_id"} & v.cookie_names()

    # the next choice starts a new history
    v.goto("/")
    _choose(v, FR_REJECT)
    page.goto(f"{gateways.second}/_consent/me")
    assert page.locator("#cg-me-id").inner_text() != consent_id


def test_the_dashboard_shows_the_archived_banner_of_an_event(
    gateways: Gateways, french: Callable[[str], Visit]
) -> None:
    v = french(gateways.first)
    v.goto("/")
    _choose(v, FR_ACCEPT)
    receipt = v.page.evaluate("() => fetch('/_consent/receipt').then((r) => r.json())")
    event = receipt["events"][-1]

    page = v.page
    # this privacy officer's browser asks for French: the dashboard's switch puts it in English
    page.goto(f"{gateways.first}/_consent/admin/language?set=en&next=/events/{event['event_id']}")
    page.get_by_label("User name").fill("dpo")
    page.get_by_label("Password").fill(DPO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    section = page.locator("#banner-shown")
    section.wait_for()
    text = section.inner_text()
    assert event["banner_version"] in text
    assert "the archive hashes to this version" in text
    assert "Your cookie choices" in text and "Accept all" in text  # the first language, open
    section.get_by_text("Texts in fr").click()
    french_texts = section.inner_text()
    assert "Vos choix en matière de cookies" in french_texts and "Tout accepter" in french_texts
    assert "Mesure d'audience" in french_texts  # the category labels as the banner showed them
    assert "Policy version 1" in text


def test_a_cross_site_form_post_is_refused_and_erases_nothing(
    gateways: Gateways, french: Callable[[str], Visit]
) -> None:
    v = french(gateways.first)
    v.goto("/")
    _choose(v, FR_ACCEPT)
    v.page.goto(f"{gateways.first}/_consent/me")
    consent_id = v.page.locator("#cg-me-id").inner_text()
    # another site (localhost is not the same site as 127.0.0.1) posts the erasure form to the gateway
    other = gateways.first.replace("127.0.0.1", "localhost")
    v.page.goto(f"{other}/")
    with v.page.expect_response(lambda r: r.url.endswith("/_consent/me/erase")) as answer:
        v.page.evaluate(
            """([action, id]) => {
                const form = Object.assign(document.createElement("form"), {method: "post", action});
                for (const [name, value] of [["consent_id", id], ["confirm", "yes"]]) {
                    form.append(Object.assign(document.createElement("input"), {type: "hidden", name, value}));
                }
                document.body.append(form);
                form.submit();
            }""",
            [f"{gateways.first}/_consent/me/erase", consent_id],
        )
    assert answer.value.status == 403
    assert answer.value.request.headers.get("origin") == other  # the browser said where it came from
    v.page.wait_for_url(f"{gateways.first}/_consent/me/erase")  # the browser shows the refusal
    v.page.wait_for_load_state()
    assert "cross_site_request" in v.page.locator("body").inner_text()
    v.page.goto(f"{gateways.first}/_consent/me")
    assert v.page.locator("#cg-me-id").inner_text() == consent_id
    assert _history_actions(v) == ["consent-given"]


def test_a_forged_cookie_shows_no_data(gateways: Gateways, french: Callable[[str], Visit]) -> None:
    v = french(gateways.first)
    host = gateways.first.split("//", 1)[1].split(":", 1)[0]
    v.context.add_cookies(
        [
            {
                "name": "cg_consent_id",
                "value": "IjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmIg.Z0abcd.forged",
                "domain": host,
                "path": "/",
            },
            {"name": "cg_consent", "value": "eyJpZCI6ImEifQ.Z0abcd.forged", "domain": host, "path": "/"},
        ]
    )
    v.page.goto(f"{gateways.first}/_consent/me")
    assert v.page.locator("#cg-me-none").inner_text() == "Aucun choix n'est enregistré pour ce navigateur."
    assert v.page.locator("#cg-me-events").count() == 0
    response = v.page.request.get(f"{gateways.first}/_consent/me/data.json")
    assert response.status == 404


def test_small_groups_are_not_published_on_the_statistics_page(
    gateways: Gateways, french: Callable[[str], Visit]
) -> None:
    v = french(gateways.second)
    v.goto("/")
    _choose(v, FR_REJECT)
    v.page.goto(f"{gateways.second}/_consent/statistics")
    assert v.page.get_by_role("heading", name="Statistiques de consentement").is_visible()
    # one visitor this month, far under the default minimum of 20 visitors: no rate, no count
    cells = v.page.locator("#cg-stats tbody td").all_inner_texts()
    assert cells and all("%" not in cell for cell in cells)
    assert any("moins de 20 visiteurs : non publié" in cell for cell in cells)
    assert v.page.locator("script").count() == 0


#: Set to write docs/screenshots/visitor-page-{fr,en}.png (read at import: the environment is cleaned later).
UPDATE_SCREENSHOTS = bool(os.environ.get("CONSENT_GATEWAY_UPDATE_SCREENSHOTS"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_axe_core_finds_no_violation_on_the_visitors_pages(
    gateways: Gateways, visit: Callable[..., Visit], axe_source: str, lang: str, tmp_path: Path
) -> None:
    # the pages' policy allows no script: axe is injected with the policy bypassed, for the test only
    v = visit(base_url=gateways.second, locale="fr-FR" if lang == "fr" else "en-US", bypass_csp=True)
    v.goto("/")
    _choose(v, FR_ACCEPT if lang == "fr" else "Accept all")
    _button(v, FR_REOPEN if lang == "fr" else "Cookie settings").click()
    with v.page.expect_navigation():
        _button(v, FR_WITHDRAW if lang == "fr" else "Withdraw my consent").click()
    for path in ("/_consent/me", "/_consent/statistics"):
        v.page.goto(f"{gateways.second}{path}")
        assert v.page.locator("html").get_attribute("lang") == lang
        if path == "/_consent/me":
            v.page.locator("#cg-me-events summary").first.click()  # the banner shown, unfolded
            shot = SCREENSHOTS / f"visitor-page-{lang}.png" if UPDATE_SCREENSHOTS else tmp_path / "me.png"
            v.page.screenshot(path=str(shot), full_page=True)
        v.page.add_script_tag(content=axe_source)
        found = v.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                 .map((x) => ({id: x.id, impact: x.impact, nodes: x.nodes.map((n) => n.target)}))"""
        )
        assert found == [], (path, found)
