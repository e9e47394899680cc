"""Privacy of the gateway's own traces (issue 10, item 6): health, readiness, metrics, user agents, file
modes and the proxy command's access log."""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.accesslog import MinimisedAccessLog, install_access_log
from consent_gateway.config import Config, StoreConfig
from consent_gateway.enrich import UA_MAX_CHARS
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def site() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as test_client:
        yield test_client


def test_health_shows_no_path_and_ready_says_ready(client: TestClient, config: Config) -> None:
    health = client.get("/_consent/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    data_dir = Path(config.gateway.data_dir)
    assert str(data_dir) not in health.text and "consent.db" not in health.text and "/" not in health.text
    ready = client.get("/_consent/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_a_locked_sqlite_log_makes_health_degraded_and_ready_503(config: Config) -> None:
    config = replace(config, store=replace(config.store, timeout_seconds=0.5))
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        assert client.get("/_consent/ready").status_code == 200
        path = config.store.url.removeprefix("sqlite:///")
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            refusal = client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
            assert refusal.status_code == 200 and refusal.json()["recorded"] is True  # kept in the spool
            health = client.get("/_consent/health")
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert path not in health.text
            ready = client.get("/_consent/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        finally:
            locker.execute("ROLLBACK")
            locker.close()


def test_metrics_are_public_without_a_token_and_protected_with_one(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        assert client.get("/_consent/metrics").status_code == 200
    monkeypatch.setenv("CONSENT_GATEWAY_METRICS_TOKEN", "metrics-secret-0123456789")
    with TestClient(ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        refused = client.get("/_consent/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert "consent_gateway_" not in refused.text
        wrong = client.get("/_consent/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        allowed = client.get("/_consent/metrics", headers={"Authorization": "Bearer metrics-secret-0123456789"})
        assert allowed.status_code == 200 and "consent_gateway_" in allowed.text


def test_user_agents_are_stored_truncated(client: TestClient) -> None:
    huge = "Mozilla/5.0 " + "x" * 17_000
    response = client.post(
        "/_consent/choices", json={"action": "reject_all"}, headers={**SAME_ORIGIN, "User-Agent": huge}
    )
    assert response.status_code == 200
    (event,) = client.get("/_consent/receipt").json()["events"]
    assert event["user_agent"] == huge[:UA_MAX_CHARS]


def test_data_files_are_0600_and_folders_0700(client: TestClient, config: Config) -> None:
    client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
    data_dir = Path(config.gateway.data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    database = Path(config.store.url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_generated_key_and_spool_folders_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    config = replace(
        Config(),
        gateway=replace(Config().gateway, data_dir=str(data)),
        store=StoreConfig(url=f"sqlite:///{data / 'consent.db'}"),
    )
    with TestClient(ConsentGateway(site(), config)) as client:  # no keys given: one is generated
        client.post("/_consent/choices", json={"action": "reject_all"}, headers=SAME_ORIGIN)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_the_access_log_minimises_addresses_and_drops_queries() -> None:
    minimise = {"203.0.113.77": "203.0.113.0"}.get
    handler_filter = MinimisedAccessLog(minimise, keep_query=False)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.77:51234", "GET", "/page?email=a@b.example", "1.1", 200), None,
    )  # fmt: skip
    assert handler_filter.filter(record)
    assert record.getMessage() == '203.0.113.0 - "GET /page HTTP/1.1" 200'


def test_the_proxy_command_logs_no_full_address(config: Config, capfd: pytest.CaptureFixture[str]) -> None:
    from consent_gateway.cli import proxy_app
    from tests.servers import ServerThread

    with ServerThread(site()) as origin:
        app = proxy_app(origin.url, config)
        install_access_log(config)
        try:
            with ServerThread(app, access_log=True) as server:
                access = logging.getLogger("uvicorn.access")
                access.setLevel(logging.INFO)  # the test servers log warnings only
                assert httpx.get(server.url + "/?token=secret").status_code == 200
        finally:
            logging.getLogger("uvicorn.access").filters.clear()
    lines = [line for line in capfd.readouterr().out.splitlines() if '"GET /' in line]
    assert lines and all("127.0.0.1" not in line and "secret" not in line for line in lines), lines
    assert any("127.0.0.0 - " in line for line in lines), lines
