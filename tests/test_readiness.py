"""Readiness that tells the truth (issue 10, item 4): /_consent/ready and /health try a write on the consent
log (at most once per interval, whatever the polling), and the request limits hold under a site's own
server in middleware mode. A real uvicorn server and the real SQLite log, over loopback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from consent_gateway import ConsentGateway, RequestLimits, metrics, routes
from consent_gateway.config import Config
from tests.conftest import TEST_SECRET_KEYS
from tests.servers import ServerThread
from tests.test_limits import raw_exchange, status_and_code


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


def site() -> Starlette:
    return Starlette(
        routes=[Route("/", lambda request: HTMLResponse("<p>hi</p>")), Route("/echo", echo, methods=["POST"])]
    )


class CountingProbe:
    """Counts the write probes the routes make on the real log."""

    def __init__(self, gateway: ConsentGateway) -> None:
        self.calls = 0
        self._probe = gateway.log.write_probe
        gateway.log.write_probe = self  # type: ignore[method-assign]

    async def __call__(self) -> Any:
        self.calls += 1
        return await self._probe()


@pytest.fixture
def served(config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ConsentGateway, CountingProbe, str]]:
    monkeypatch.setattr(routes, "WRITE_PROBE_INTERVAL_S", 0.5)
    config = replace(config, store=replace(config.store, timeout_seconds=0.3))
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    probe = CountingProbe(gateway)
    with ServerThread(gateway) as server:
        yield gateway, probe, server.url


def test_a_locked_log_is_not_ready_before_any_consent_fails(
    served: tuple[ConsentGateway, CountingProbe, str], config: Config
) -> None:
    _, _, url = served
    assert httpx.get(url + "/_consent/ready").status_code == 200
    path = config.store.url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock; nobody has tried to write
        before = metrics.value("store_errors_total", operation="write_probe")
        for _ in range(40):  # the last good probe is kept for the interval, then the lock shows
            health = httpx.get(url + "/_consent/health", timeout=10).json()
            if health["status"] == "degraded":
                break
        assert health["status"] == "degraded" and health["store"]["writable"] is False
        ready = httpx.get(url + "/_consent/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert metrics.value("store_errors_total", operation="write_probe") > before
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    for _ in range(40):
        if httpx.get(url + "/_consent/ready", timeout=10).status_code == 200:
            break
    assert httpx.get(url + "/_consent/health").json()["store"] == {"backend": "sqlite", "ok": True, "durable": True,
                                                                  "writable": True}


def test_pollers_share_one_probe_per_interval(served: tuple[ConsentGateway, CountingProbe, str]) -> None:
    _, probe, url = served
    with httpx.Client(base_url=url) as client:
        for _ in range(15):
            assert client.get("/_consent/ready").status_code == 200
            assert client.get("/_consent/health").json()["status"] == "ok"
    # 30 polls within well under a few intervals: a handful of probes, not one per request
    assert 1 <= probe.calls <= 6


# -- the request limits under the site's own server --------------------------------------------------------


@pytest.fixture
def embedded(config: Config) -> Iterator[ServerThread]:
    config = replace(config, proxy=replace(config.proxy, body_idle_timeout_seconds=0.5, max_header_bytes=4096))
    app = RequestLimits.from_config(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS), config)
    with ServerThread(app) as server:
        yield server


def test_embedded_with_the_limits_a_trickled_body_gets_408(embedded: ServerThread) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab"
    response = raw_exchange(embedded.port, head, trickle=[b"cd"], pause=1.5)
    assert status_and_code(response) == (408, "request_timeout")


def test_embedded_with_the_limits_oversized_headers_get_431(embedded: ServerThread) -> None:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    assert status_and_code(raw_exchange(embedded.port, request)) == (431, "headers_too_large")
