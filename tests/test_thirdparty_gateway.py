"""Third parties nobody classified, end to end through the real middleware (no browser)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config, RegionsConfig, ThirdPartiesConfig
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
UNKNOWN = "https://tags.unknown-ads.example/t.js"
SAME_SITE_CDN = "https://static.example.co.uk/app.js"
LIBRARY_CDN = "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/jquery.min.js"
GOOGLE_FONTS = "https://fonts.googleapis.com/css2?family=Roboto"


def page(request: Request) -> Response:
    return HTMLResponse(
        "<!doctype html><html><head><title>Shop</title>"
        f'<link rel="stylesheet" href="{GOOGLE_FONTS}">'
        f'<script src="{LIBRARY_CDN}"></script>'
        f'<script src="{SAME_SITE_CDN}"></script>'
        "</head><body><h1>Shop</h1>"
        f'<script src="{UNKNOWN}"></script>'
        '<img src="/logo.png" alt="logo"></body></html>'
    )


def gateway(config: Config) -> ConsentGateway:
    return ConsentGateway(Starlette(routes=[Route("/", page)]), config, secret_keys=TEST_SECRET_KEYS)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    metrics.reset()
    with TestClient(gateway(config), base_url="https://www.example.co.uk") as test_client:
        yield test_client


def live(body: str, url: str) -> bool:
    """The page loads ``url`` as it is (not renamed data-cg-src/href by the gateway)."""
    return f' src="{url}"' in body or f' href="{url}"' in body


def test_an_unknown_third_party_is_held_as_unclassified_before_consent(client: TestClient) -> None:
    body = client.get("/").text
    assert not live(body, UNKNOWN)
    assert f'data-cg-src="{UNKNOWN}"' in body
    held = body[body.index(f'data-cg-src="{UNKNOWN}"') - 200 : body.index(f'data-cg-src="{UNKNOWN}"') + 200]
    assert 'data-category="unclassified"' in held and 'data-cg-vendor="unclassified"' in held
    # the site's own subdomain (Public Suffix List: example.co.uk) and an allow-listed library CDN: never held
    assert live(body, SAME_SITE_CDN) and live(body, LIBRARY_CDN)
    # Google Fonts is off until the owner opts in
    assert not live(body, GOOGLE_FONTS)
    text = metrics.render()
    assert 'consent_gateway_unclassified_host_held_total{host="tags.unknown-ads.example"} 1' in text


def test_accept_all_brings_it_back_and_reject_all_keeps_it_held(client: TestClient) -> None:
    client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
    assert not live(client.get("/").text, UNKNOWN)
    answer = client.post("/_consent/choices", json={"action": "accept_all"}, headers=SAME_ORIGIN)
    assert answer.json()["choices"]["unclassified"] is True
    body = client.get("/").text
    assert live(body, UNKNOWN) and live(body, GOOGLE_FONTS)


def test_the_site_is_the_request_host(config: Config) -> None:
    with TestClient(gateway(config), base_url="https://shop.other.example") as other:
        body = other.get("/").text
    assert not live(body, SAME_SITE_CDN)  # example.co.uk is a third party of other.example


def test_first_party_hosts_and_owner_allow_list(config: Config) -> None:
    configured = replace(
        config,
        gateway=replace(config.gateway, first_party_hosts=("*.unknown-ads.example",)),
        third_parties=ThirdPartiesConfig(enable=("google-fonts",)),
    )
    with TestClient(gateway(configured), base_url="https://www.example.co.uk") as test_client:
        body = test_client.get("/").text
    assert live(body, UNKNOWN) and live(body, GOOGLE_FONTS)


def test_report_mode_lets_it_through_and_counts_it(config: Config) -> None:
    metrics.reset()
    reporting = replace(config, third_parties=ThirdPartiesConfig(unknown="report"))
    with TestClient(gateway(reporting), base_url="https://www.example.co.uk") as test_client:
        body = test_client.get("/").text
    assert live(body, UNKNOWN)
    text = metrics.render()
    assert 'consent_gateway_unclassified_host_seen_total{host="tags.unknown-ads.example"} 1' in text
    assert 'consent_gateway_unclassified_host_held_total{host="tags.unknown-ads.example"} 0' in text


def test_opt_out_regions_let_it_run_until_refused(config: Config) -> None:
    opt_out = replace(config, regions=RegionsConfig(default="opt-out", unknown="opt-out"))
    with TestClient(gateway(opt_out), base_url="https://www.example.co.uk") as test_client:
        assert live(test_client.get("/").text, UNKNOWN)
        test_client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
        assert not live(test_client.get("/").text, UNKNOWN)
