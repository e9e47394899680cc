"""`[cookie] domain = "auto"`: one choice for every subdomain, and the repair of a duplicated consent cookie."""

from __future__ import annotations

import time
from dataclasses import replace
from unittest import mock

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config, CookieConfig, parse_config
from consent_gateway.consent import ConsentCodec, ConsentRecord
from consent_gateway.consent_cookie import ConsentCookie
from consent_gateway.errors import ConfigError
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
PAGE = '<html><head></head><body><script src="https://www.google-analytics.com/analytics.js"></script></body></html>'


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(PAGE))])


def auto(config: Config) -> Config:
    return replace(config, cookie=replace(CookieConfig(), domain="auto"))


@pytest.fixture
def gateway(config: Config) -> ConsentGateway:
    return ConsentGateway(site(), auto(config), secret_keys=TEST_SECRET_KEYS)


def client_on(gateway: ConsentGateway, host: str) -> TestClient:
    return TestClient(gateway, base_url=f"http://{host}")


def consent_headers(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [h for h in response.headers.get_list("set-cookie") if h.startswith("cg_consent=")]


def analytics_live(response) -> bool:  # type: ignore[no-untyped-def]
    return '<script src="https://www.google-analytics.com/analytics.js">' in response.text


def signed(codec: ConsentCodec, *, analytics: bool, age: int) -> str:
    """A consent cookie value signed `age` seconds ago (the signature's time is the time of the choice)."""
    choices = {"analytics": analytics, "session-replay": False, "marketing": False, "preferences": False}
    then = time.time() - age
    with mock.patch("itsdangerous.timed.time.time", return_value=then):
        return codec.encode(ConsentRecord("c-" + str(age), choices, {}, "1", int(then)))


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.example.com", "example.com"),
        ("shop.example.co.uk", "example.co.uk"),
        ("a.example.localhost", "example.localhost"),
        ("example.localhost", "example.localhost"),
        ("localhost", None),  # a public suffix by the PSL's default rule: host-only
        ("github.io", None),  # a public suffix of the list's private section
        ("127.0.0.1", None),
        ("::1", None),
    ],
)
def test_auto_scopes_the_cookie_on_the_registrable_domain_or_falls_back_to_host_only(
    config: Config, host: str, domain: str | None
) -> None:
    cookie = ConsentCookie(auto(config), ConsentCodec(config, TEST_SECRET_KEYS))
    assert cookie.domain_for(host) == domain


def test_a_choice_on_one_subdomain_holds_on_another(gateway: ConsentGateway) -> None:
    with client_on(gateway, "www.example.localhost") as client:
        response = client.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        assert response.status_code == 200
        written = consent_headers(response)
        # the domain-wide cookie, and the expiry of any host-only copy left from before "auto"
        assert any("Domain=example.localhost" in h and "Max-Age=0" not in h for h in written)
        assert any("Domain=" not in h and "Max-Age=0" in h for h in written)
        # the client's cookie jar sends the domain-wide cookie to shop.: the choice holds there
        assert analytics_live(client.get("http://shop.example.localhost/"))
        state = client.get("http://shop.example.localhost/_consent/state").json()
        assert state["consent"]["consent_id"] == response.json()["consent_id"]
        # and not to another registrable domain
        assert not analytics_live(client.get("http://www.other.localhost/"))


def test_withdrawal_expires_the_cookie_on_both_scopes(gateway: ConsentGateway) -> None:
    with client_on(gateway, "www.example.localhost") as www:
        www.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        response = www.delete("/_consent/choices", headers=SAME_ORIGIN)
        expired = consent_headers(response)
        assert all("Max-Age=0" in h for h in expired)
        assert any("Domain=example.localhost" in h for h in expired)
        assert any("Domain=" not in h for h in expired)


def test_host_only_mode_still_withdraws_a_domain_wide_copy_another_gateway_set(config: Config) -> None:
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with client_on(gateway, "www.example.localhost") as www:
        response = www.delete("/_consent/choices", headers=SAME_ORIGIN)
        expired = consent_headers(response)
        assert any("Domain=example.localhost" in h and "Max-Age=0" in h for h in expired)


def test_ip_host_gets_a_host_only_cookie(gateway: ConsentGateway) -> None:
    with client_on(gateway, "127.0.0.1:8000") as client:
        response = client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
        (header,) = consent_headers(response)
        assert "Domain=" not in header


def test_duplicated_cookies_read_the_newest_valid_one_and_are_repaired(gateway: ConsentGateway) -> None:
    old_grant = signed(gateway.codec, analytics=True, age=3600)
    new_refusal = signed(gateway.codec, analytics=False, age=60)
    with client_on(gateway, "shop.example.localhost") as shop:
        page = shop.get("/", headers={"Cookie": f"cg_consent={old_grant}; cg_consent={new_refusal}"})
        # the newer refusal wins: the older grant is not read as a grant
        assert page.status_code == 200 and not analytics_live(page)
        assert metrics.value("consent_cookie_rejected_total", reason="duplicated") == 1
        repair = consent_headers(page)
        kept = [h for h in repair if "Max-Age=0" not in h]
        assert len(kept) == 1 and kept[0].startswith(f"cg_consent={new_refusal};")
        assert "Domain=example.localhost" in kept[0]
        assert any("Domain=" not in h and "Max-Age=0" in h for h in repair)  # the host-only copy goes


def test_a_duplicate_grants_only_when_the_newest_valid_one_does(gateway: ConsentGateway) -> None:
    old_refusal = signed(gateway.codec, analytics=False, age=3600)
    new_grant = signed(gateway.codec, analytics=True, age=60)
    with client_on(gateway, "shop.example.localhost") as shop:
        page = shop.get("/", headers={"Cookie": f"cg_consent={new_grant}; cg_consent={old_refusal}"})
        assert analytics_live(page)


def test_a_forged_duplicate_never_wins_and_is_counted(gateway: ConsentGateway) -> None:
    refusal = signed(gateway.codec, analytics=False, age=60)
    forged = refusal.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with client_on(gateway, "shop.example.localhost") as shop:
        page = shop.get("/", headers={"Cookie": f"cg_consent={forged}; cg_consent={refusal}"})
        assert not analytics_live(page)
        assert metrics.value("consent_cookie_rejected_total", reason="bad_signature") == 1
        state = shop.get("/_consent/state", headers={"Cookie": f"cg_consent={forged}; cg_consent={refusal}"})
        assert state.json()["consent"]["choices"]["analytics"] is False
        assert any(h.startswith(f"cg_consent={refusal};") for h in consent_headers(state))


def test_duplicates_that_are_all_invalid_mean_no_consent_and_are_all_expired(gateway: ConsentGateway) -> None:
    with client_on(gateway, "shop.example.localhost") as shop:
        page = shop.get("/", headers={"Cookie": "cg_consent=x.y.z; cg_consent=a.b.c"})
        assert not analytics_live(page)
        repair = consent_headers(page)
        assert repair and all("Max-Age=0" in h for h in repair)


def test_a_single_cookie_is_not_rewritten(gateway: ConsentGateway) -> None:
    grant = signed(gateway.codec, analytics=True, age=60)
    with client_on(gateway, "shop.example.localhost") as shop:
        page = shop.get("/", headers={"Cookie": f"cg_consent={grant}"})
        assert analytics_live(page) and consent_headers(page) == []


def test_a_choice_made_with_duplicates_leaves_one_cookie(gateway: ConsentGateway) -> None:
    a, b = signed(gateway.codec, analytics=True, age=3600), signed(gateway.codec, analytics=False, age=60)
    with client_on(gateway, "shop.example.localhost") as shop:
        response = shop.post(
            "/_consent/choices",
            json={"action": "accept_all"},
            headers={**SAME_ORIGIN, "Cookie": f"cg_consent={a}; cg_consent={b}"},
        )
        kept = [h for h in consent_headers(response) if "Max-Age=0" not in h]
        assert len(kept) == 1 and "Domain=example.localhost" in kept[0]
        assert response.json()["consent_id"] == "c-60"  # the winner's id carries on


@pytest.mark.parametrize("domain", ["auto", "example.org", ".example.org", ""])
def test_cookie_domain_accepts_auto_a_domain_or_nothing(domain: str) -> None:
    assert parse_config({"cookie": {"domain": domain}}).cookie.domain == domain


@pytest.mark.parametrize("domain", ["https://example.org", "example.org:8443", "example.org/path", "exa mple.org"])
def test_a_cookie_domain_that_is_not_a_domain_names_the_key(domain: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"cookie": {"domain": domain}})
    assert raised.value.key == "cookie.domain"
