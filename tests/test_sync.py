"""`[[consent_domains]]`: a choice carried to the owner's sister domains by a signed, single-use token.

Several real gateways (each with its own SQLite log, or two instances sharing one) behind one ASGI app that
dispatches on the Host header, so one test client with one cookie jar plays one browser.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config, ConsentDomain, CookieConfig, GatewayConfig, StoreConfig, parse_config
from consent_gateway.errors import ConfigError
from consent_gateway.middleware import ConsentGateway
from consent_gateway.sync import TOKEN_TTL_SECONDS
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
A, B, C = "www.example.localhost", "www.sister.localhost", "shop.third.localhost"
SYNC = {host: f"http://{host}/_consent/sync" for host in (A, B, C)}
PAGE = '<html><head></head><body><script src="https://www.google-analytics.com/analytics.js"></script></body></html>'


def site() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", lambda request: HTMLResponse(PAGE))])


def gateway_config(data: Path, sisters: tuple[str, ...], *, store: Path | None = None, name: str = "gw") -> Config:
    db = store or data / "consent.db"
    return replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(data), instance_id=name),
        store=StoreConfig(url=f"sqlite:///{db}"),
        cookie=replace(CookieConfig(), domain="auto"),
        consent_domains=tuple(ConsentDomain(sync_url=SYNC[h]) for h in sisters),
    )


class ByHost:
    """Routes each request to the gateway serving its Host, as DNS and a load balancer would."""

    def __init__(self, gateways: dict[str, ConsentGateway]) -> None:
        self.gateways = gateways

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            for gateway in {id(g): g for g in self.gateways.values()}.values():
                await gateway.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        host = dict(scope["headers"])[b"host"].decode().partition(":")[0]
        await self.gateways[host](scope, receive, send)


@pytest.fixture
def gateways(tmp_path: Path) -> dict[str, ConsentGateway]:
    everyone = (A, B, C)  # each lists every domain, itself included: the same list on every gateway
    return {
        host: ConsentGateway(site(), gateway_config(tmp_path / host, everyone, name=host), secret_keys=TEST_SECRET_KEYS)
        for host in everyone
    }


@pytest.fixture
def browser(gateways: dict[str, ConsentGateway]) -> Iterator[TestClient]:
    with TestClient(ByHost(gateways), follow_redirects=False) as client:
        yield client


def choose(client: TestClient, host: str, action: str = "accept_all") -> Any:
    response = client.post(
        f"http://{host}/_consent/choices",
        json={"action": action},
        headers={**SAME_ORIGIN, "Referer": f"http://{host}/products?id=7"},
    )
    assert response.status_code == 200, response.text
    return response


def consent_set(response: Any) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith("cg_consent=") and "Max-Age=0" not in h]


def consent_expired(response: Any) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith("cg_consent=") and "Max-Age=0" in h]


def state(client: TestClient, host: str) -> Any:
    return client.get(f"http://{host}/_consent/state").json()["consent"]


def events(client: TestClient, host: str) -> list[dict[str, Any]]:
    return client.get(f"http://{host}/_consent/receipt").json()["events"]  # type: ignore[no-any-return]


def follow(client: TestClient, url: str) -> list[Any]:
    """Follow the sync chain as a browser's top-level navigation would, hop by hop."""
    hops = []
    while True:
        response = client.get(url)
        hops.append(response)
        if response.status_code != 303:
            return hops
        url = response.headers["location"]


def test_a_choice_is_carried_to_every_sister_and_the_visitor_comes_back(browser: TestClient) -> None:
    choice = choose(browser, A)
    sync = choice.json()["sync"]
    assert urlsplit(sync).netloc == B and urlsplit(sync).path == "/_consent/sync"
    hops = follow(browser, sync)
    assert [urlsplit(str(h.url)).netloc for h in hops] == [B, C, A]
    assert str(hops[-1].url) == f"http://{A}/products?id=7"  # back on the page the choice was made on
    for hop in hops[:2]:
        assert hop.headers["cache-control"] == "no-store"
        (cookie,) = consent_set(hop)
        assert "HttpOnly" in cookie
    consent_id = choice.json()["consent_id"]
    for host in (B, C):
        current = state(browser, host)
        assert current["consent_id"] == consent_id and current["choices"]["analytics"] is True
        (event,) = events(browser, host)
        assert event["action"] == "synced-from" and event["referrer_host"] == "example.localhost"
        assert event["categories"]["analytics"] is True
    assert [e["action"] for e in events(browser, A)] == ["consent-given"]
    assert metrics.value("consent_sync_total", kind="choice") == 2
    # the sister's pages follow the choice
    assert '<script src="https://www.google-analytics.com/analytics.js">' in browser.get(f"http://{B}/").text


def test_a_token_is_used_once(browser: TestClient) -> None:
    sync = choose(browser, A).json()["sync"]
    first = browser.get(sync)
    assert consent_set(first)
    browser.cookies.clear()
    again = browser.get(sync)
    assert again.status_code == 303  # sent on, so a visitor replaying a URL is not stranded…
    assert consent_set(again) == []  # …but nothing is applied
    assert state(browser, B) is None
    assert metrics.value("consent_sync_rejected_total", reason="replayed") == 1


def test_single_use_holds_across_instances_sharing_the_log(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    origin = ConsentGateway(site(), gateway_config(tmp_path / "a", (A, B)), secret_keys=TEST_SECRET_KEYS)
    first, second = (
        ConsentGateway(site(), gateway_config(tmp_path / n, (A, B), store=shared, name=n), secret_keys=TEST_SECRET_KEYS)
        for n in ("b1", "b2")
    )
    with TestClient(ByHost({A: origin, B: first}), follow_redirects=False) as one:
        sync = choose(one, A).json()["sync"]
        assert consent_set(one.get(sync))
    with TestClient(ByHost({A: origin, B: second}), follow_redirects=False) as other:
        replay = other.get(sync)
        assert replay.status_code == 303 and consent_set(replay) == []


def test_an_expired_token_is_not_applied(browser: TestClient) -> None:
    then = time.time() - TOKEN_TTL_SECONDS - 5
    with mock.patch("itsdangerous.timed.time.time", return_value=then):
        sync = choose(browser, A).json()["sync"]
    response = browser.get(sync)
    assert response.status_code == 303 and consent_set(response) == []
    assert metrics.value("consent_sync_rejected_total", reason="expired") == 1


def test_a_forged_token_is_refused_with_a_json_error(browser: TestClient) -> None:
    sync = choose(browser, A).json()["sync"]
    token = parse_qs(urlsplit(sync).query)["token"][0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = browser.get(f"http://{B}/_consent/sync", params={"token": forged})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_sync_token"
    assert consent_set(response) == []
    missing = browser.get(f"http://{B}/_consent/sync")
    assert missing.status_code == 400


def test_a_token_planted_on_another_site_is_not_applied(browser: TestClient) -> None:
    """Someone makes a choice, keeps its sync link and gets a visitor to follow it from their own page."""
    sync = choose(browser, A).json()["sync"]
    browser.cookies.clear()
    planted = browser.get(sync, headers={"Referer": "https://attacker.example/page"})
    assert planted.status_code == 303 and consent_set(planted) == []
    assert metrics.value("consent_sync_rejected_total", reason="foreign_referrer") == 1
    # the origin's own page, as the banner's navigation sends it, is believed
    assert consent_set(browser.get(choose(browser, A).json()["sync"], headers={"Referer": f"http://{A}/"}))


def test_a_sister_accepts_only_domains_it_lists_itself(tmp_path: Path) -> None:
    origin = ConsentGateway(site(), gateway_config(tmp_path / "a", (A, B)), secret_keys=TEST_SECRET_KEYS)
    stranger = ConsentGateway(site(), gateway_config(tmp_path / "b", (C,)), secret_keys=TEST_SECRET_KEYS)
    with TestClient(ByHost({A: origin, B: stranger}), follow_redirects=False) as client:
        sync = choose(client, A).json()["sync"]
        response = client.get(sync)
        assert response.status_code == 303 and consent_set(response) == []
    assert metrics.value("consent_sync_rejected_total", reason="unknown_origin") == 1


def test_one_withdrawal_withdraws_everywhere(browser: TestClient) -> None:
    follow(browser, choose(browser, A).json()["sync"])
    assert state(browser, C) is not None
    withdrawal = browser.delete(f"http://{B}/_consent/choices", headers=SAME_ORIGIN)
    assert withdrawal.status_code == 200
    hops = follow(browser, withdrawal.json()["sync"])
    assert [urlsplit(str(h.url)).netloc for h in hops] == [A, C, B]
    for hop in hops[:2]:
        assert consent_expired(hop) and consent_set(hop) == []
    for host in (A, B, C):
        assert state(browser, host) is None
    # recorded on each domain, with where it came from
    consent_id = withdrawal.json()["consent_id"]
    for host in (A, C):
        log = host_log(browser, host, consent_id)
        assert log[-1]["action"] == "consent-withdrawn" and log[-1]["referrer_host"] == "sister.localhost"


def host_log(client: TestClient, host: str, consent_id: str) -> list[dict[str, Any]]:
    gateway: ConsentGateway = client.app.gateways[host]  # type: ignore[attr-defined]
    history = client.portal.call(gateway.log.history, consent_id)  # type: ignore[union-attr]
    return [{"action": e.action, "referrer_host": e.referrer_host} for e in history]


def test_a_refusal_is_carried_too(browser: TestClient) -> None:
    follow(browser, choose(browser, A, "reject_all").json()["sync"])
    assert state(browser, B)["choices"]["analytics"] is False


def test_without_consent_domains_nothing_is_carried(config: Config) -> None:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        response = client.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)
        assert "sync" not in response.json()
        assert client.get("/_consent/sync", params={"token": "x"}).status_code == 404


def test_a_sister_under_another_policy_version_does_not_take_the_choice(tmp_path: Path) -> None:
    origin = ConsentGateway(site(), gateway_config(tmp_path / "a", (A, B)), secret_keys=TEST_SECRET_KEYS)
    other = gateway_config(tmp_path / "b", (A, B))
    other = replace(other, policy=replace(other.policy, version="2"))
    with TestClient(ByHost({A: origin, B: ConsentGateway(site(), other, secret_keys=TEST_SECRET_KEYS)})) as client:
        client.follow_redirects = False
        response = client.get(choose(client, A).json()["sync"])
        assert response.status_code == 303 and consent_set(response) == []
    assert metrics.value("consent_sync_rejected_total", reason="old_policy") == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("www.example.org/_consent/sync", "absolute http(s) URL"),
        ("ftp://www.example.org/_consent/sync", "absolute http(s) URL"),
        ("https://www.example.org/_consent/sync?x=1", "query"),
        ("https://www.example.org", "path"),
    ],
)
def test_a_bad_sync_url_names_its_key(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"consent_domains": [{"sync_url": url}]})
    assert raised.value.key == "consent_domains[0].sync_url"
    assert problem in raised.value.message


def test_consent_domains_are_read_from_toml() -> None:
    config = parse_config({"consent_domains": [{"sync_url": "https://www.example.org/_consent/sync"}]})
    assert config.consent_domains == (ConsentDomain(sync_url="https://www.example.org/_consent/sync"),)
    with pytest.raises(ConfigError) as raised:
        parse_config({"consent_domains": [{"url": "https://www.example.org/_consent/sync"}]})
    assert raised.value.key == "consent_domains[0].url"
    with pytest.raises(ConfigError) as twice:
        parse_config(
            {"consent_domains": [{"sync_url": "https://a.example.org/s"}, {"sync_url": "https://a.example.org/t"}]}
        )
    assert twice.value.key == "consent_domains[1].sync_url"
