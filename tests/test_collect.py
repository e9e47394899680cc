"""Beacon forwarding through /_consent/collect, against a real loopback "vendor" endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway.catalog import Catalog
from consent_gateway.collect import collect_route
from consent_gateway.decision import Decision
from tests.servers import ServerThread


class Vendor:
    """A stand-in analytics endpoint that records every beacon it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def hit(request: Request) -> Response:
            self.received.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": await request.body(),
                }
            )
            response = Response(status_code=204)
            response.set_cookie("vendor_id", "tracked")
            return response

        async def pixel(request: Request) -> Response:
            self.received.append({"method": request.method, "path": request.url.path, "query": request.url.query})
            return Response(b"GIF89a", media_type="image/gif", headers={"set-cookie": "px=1"})

        async def slow(request: Request) -> Response:
            await asyncio.sleep(1.5)
            return Response(status_code=204)

        return Starlette(
            routes=[
                Route("/g/collect", hit, methods=["GET", "POST"]),
                Route("/px.gif", pixel),
                Route("/slow", slow, methods=["GET", "POST"]),
            ]
        )


def read_decision(scope: Any) -> Decision:
    """Stands in for VisitorReader.read: the test says what the visitor allows in a request header."""
    headers = dict(scope["headers"])
    granted = headers.get(b"x-test-granted", b"").decode()
    refused = headers.get(b"x-test-refused-vendors", b"").decode()
    return Decision(
        granted=frozenset(filter(None, granted.split(","))) | {"necessary"},
        vendors_refused=frozenset(filter(None, refused.split(","))),
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def vendor() -> Iterator[tuple[Vendor, str]]:
    recorder = Vendor()
    with ServerThread(recorder.app()) as server:
        yield recorder, server.url


@pytest.fixture(scope="module")
def gateway(vendor: tuple[Vendor, str]) -> Iterator[str]:
    _, url = vendor
    # The built-in catalog with the site's overrides, as the gateway builds it: beacons go to loopback.
    catalog = Catalog.builtin().merged(
        [
            {"id": "google-analytics", "beacon_endpoints": [f"{url}/g/collect", f"{url}/px.gif"]},
            {"id": "slowpoke", "category": "analytics", "beacon_endpoints": [f"{url}/slow"]},
            {"id": "gone", "category": "analytics", "beacon_endpoints": [f"http://127.0.0.1:{_closed_port()}/hit"]},
            {"id": "no-endpoints", "category": "analytics"},
        ]
    )
    route = collect_route(catalog, read_decision, timeout_seconds=0.5, max_body_bytes=1024)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await route.endpoint.aclose()

    with ServerThread(Starlette(routes=[route], lifespan=lifespan)) as server:
        yield server.url


@pytest.fixture
def received(vendor: tuple[Vendor, str]) -> list[dict[str, Any]]:
    vendor[0].received.clear()
    return vendor[0].received


ANALYTICS = {"x-test-granted": "analytics"}


def test_beacon_with_consent_reaches_the_vendor(gateway: str, received: list[dict[str, Any]]) -> None:
    before = metrics.value("beacons_total", vendor="google-analytics", outcome="forwarded")
    response = httpx.post(
        gateway + "/_consent/collect/google-analytics/g/collect?v=2&tid=G-TEST&en=page_view",
        content=b"en=scroll&epn.percent=90",
        headers={**ANALYTICS, "content-type": "text/plain;charset=UTF-8", "user-agent": "Mozilla/5.0 test"},
    )
    assert response.status_code == 204
    assert len(received) == 1
    hit = received[0]
    assert (hit["method"], hit["path"], hit["query"]) == ("POST", "/g/collect", "v=2&tid=G-TEST&en=page_view")
    assert hit["body"] == b"en=scroll&epn.percent=90"
    assert hit["headers"]["content-type"] == "text/plain;charset=UTF-8"
    assert hit["headers"]["user-agent"] == "Mozilla/5.0 test"
    assert metrics.value("beacons_total", vendor="google-analytics", outcome="forwarded") == before + 1


def test_beacon_without_consent_is_answered_204_and_goes_nowhere(
    gateway: str, received: list[dict[str, Any]]
) -> None:
    before = metrics.value("beacons_total", vendor="google-analytics", outcome="refused")
    response = httpx.post(gateway + "/_consent/collect/google-analytics/g/collect?v=2", content=b"en=page_view")
    assert response.status_code == 204
    assert response.content == b""
    assert received == []
    assert metrics.value("beacons_total", vendor="google-analytics", outcome="refused") == before + 1


def test_vendor_refused_by_name_gets_nothing_even_with_its_category(
    gateway: str, received: list[dict[str, Any]]
) -> None:
    response = httpx.get(
        gateway + "/_consent/collect/google-analytics/g/collect?v=2",
        headers={**ANALYTICS, "x-test-refused-vendors": "google-analytics"},
    )
    assert response.status_code == 204
    assert received == []


def test_forwarded_beacon_carries_no_cookie_or_visitor_address(
    gateway: str, received: list[dict[str, Any]]
) -> None:
    response = httpx.get(
        gateway + "/_consent/collect/google-analytics/g/collect?v=2",
        headers={
            **ANALYTICS,
            "cookie": "_ga=GA1.1.123.456; cg_consent=signed",
            "x-forwarded-for": "203.0.113.9",
            "x-real-ip": "203.0.113.9",
            "forwarded": "for=203.0.113.9",
            "referer": "https://shop.example/cart?email=a@b.c",
        },
    )
    assert response.status_code == 204
    sent = received[0]["headers"]
    for header in ("cookie", "x-forwarded-for", "x-real-ip", "forwarded", "referer", "x-test-granted"):
        assert header not in sent
    assert "203.0.113.9" not in repr(sent)
    # The vendor cannot set a cookie on the site's domain through the gateway either.
    assert "set-cookie" not in response.headers


def test_empty_path_uses_first_endpoint_and_image_beacon_is_relayed(
    gateway: str, received: list[dict[str, Any]]
) -> None:
    assert httpx.get(gateway + "/_consent/collect/google-analytics?v=2", headers=ANALYTICS).status_code == 204
    assert received[-1]["path"] == "/g/collect"
    pixel = httpx.get(gateway + "/_consent/collect/google-analytics/px.gif?e=1", headers=ANALYTICS)
    assert (pixel.status_code, pixel.content, pixel.headers["content-type"]) == (200, b"GIF89a", "image/gif")
    assert "set-cookie" not in pixel.headers
    assert received[-1]["path"] == "/px.gif"


def test_unknown_vendor_is_404_json(gateway: str) -> None:
    response = httpx.post(gateway + "/_consent/collect/nosuchvendor/collect", headers=ANALYTICS)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_vendor"


def test_path_outside_the_vendor_endpoints_is_refused(gateway: str, received: list[dict[str, Any]]) -> None:
    for path in ("/admin", "/g/collect/../../admin", "/g/collectX"):
        response = httpx.get(gateway + "/_consent/collect/google-analytics" + path, headers=ANALYTICS)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "unknown_endpoint"
    no_endpoints = httpx.get(gateway + "/_consent/collect/no-endpoints", headers=ANALYTICS)
    assert no_endpoints.status_code == 404
    assert received == []


def test_oversized_beacon_is_413_and_not_forwarded(gateway: str, received: list[dict[str, Any]]) -> None:
    response = httpx.post(
        gateway + "/_consent/collect/google-analytics/g/collect", content=b"x" * 2048, headers=ANALYTICS
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert received == []


def test_cross_site_beacon_is_403(gateway: str, received: list[dict[str, Any]]) -> None:
    response = httpx.post(
        gateway + "/_consent/collect/google-analytics/g/collect",
        content=b"en=page_view",
        headers={**ANALYTICS, "sec-fetch-site": "cross-site"},
    )
    assert response.status_code == 403
    assert received == []


def test_unreachable_vendor_is_a_clean_502(gateway: str) -> None:
    response = httpx.post(gateway + "/_consent/collect/gone/hit", content=b"x", headers=ANALYTICS)
    assert response.status_code == 502
    assert response.json() == {"error": {"code": "vendor_unavailable", "message": "The vendor could not be reached."}}


def test_slow_vendor_is_a_clean_504(gateway: str) -> None:
    before = metrics.value("beacons_total", vendor="slowpoke", outcome="timeout")
    response = httpx.get(gateway + "/_consent/collect/slowpoke", headers=ANALYTICS)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "vendor_timeout"
    assert metrics.value("beacons_total", vendor="slowpoke", outcome="timeout") == before + 1


# -- through the whole gateway: the consent API's real cookie decides --------------------------------
@pytest.fixture
def full_gateway(config: Any, vendor: tuple[Vendor, str]) -> Iterator[str]:
    from dataclasses import replace

    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import TEST_SECRET_KEYS

    site_config = replace(
        config, vendors=({"id": "google-analytics", "beacon_endpoints": [f"{vendor[1]}/g/collect"]},)
    )
    site = Starlette(routes=[Route("/", lambda request: Response("home", media_type="text/plain"))])
    with ServerThread(ConsentGateway(site, site_config, secret_keys=TEST_SECRET_KEYS)) as server:
        yield server.url


def test_gateway_forwards_beacons_only_after_the_visitor_accepts(
    full_gateway: str, received: list[dict[str, Any]]
) -> None:
    beacon = "/_consent/collect/google-analytics/g/collect?v=2&tid=G-E2E&en=page_view"
    same_origin = {"sec-fetch-site": "same-origin"}
    with httpx.Client(base_url=full_gateway, headers=same_origin) as visitor:
        assert visitor.post(beacon, content=b"").status_code == 204
        assert received == []  # no choice yet: nothing leaves
        accepted = visitor.post("/_consent/choices", json={"choices": {"analytics": True}})
        assert accepted.status_code == 200
        assert visitor.post(beacon, content=b"").status_code == 204
        assert [hit["query"] for hit in received] == ["v=2&tid=G-E2E&en=page_view"]
        assert "cookie" not in received[0]["headers"]  # the consent cookie stays on the site
        refused = visitor.post("/_consent/choices", json={"action": "reject_all"})
        assert refused.status_code == 200
        assert visitor.post(beacon, content=b"").status_code == 204
    assert len(received) == 1
