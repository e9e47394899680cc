"""Sessions and lockouts live in the store: logout, user removal and lockout hold on every instance of the
gateway and across restarts (two gateways on one SQLite file, and on one Redis)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_sync
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.config import AdminConfig, AdminUser, Config, GatewayConfig, StoreConfig
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

from .conftest import FAST_ARGON2, csrf_of

ADMIN = "/_consent/admin"
PASSWORD = "a long enough passphrase"
HASH = FAST_ARGON2.hash(PASSWORD)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared' / 'consent.db'}"
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"cgtest-{uuid.uuid4().hex[:12]}"
    yield f"{redis_url}?prefix={prefix}"
    with redis_sync.Redis.from_url(redis_url) as client:  # this test's keys only, never the whole DB
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            client.delete(*keys)


def gateway(tmp_path: Path, store_url: str, name: str, users: tuple[str, ...] = ("dpo", "analyst")) -> TestClient:
    config = replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / name), instance_id=name),
        store=StoreConfig(url=store_url),
        admin=AdminConfig(
            users=tuple(
                AdminUser(name=u, password_hash=HASH, role="admin" if u == "root" else "privacy-officer") for u in users
            ),
            audit_log=str(tmp_path / name / "audit.jsonl"),
        ),
    )
    site = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    app = ConsentGateway(site, config, secret_keys=TEST_SECRET_KEYS)
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


def log_in(client: TestClient, name: str = "dpo", password: str = PASSWORD) -> int:
    form = client.get(f"{ADMIN}/login")
    response = client.post(
        f"{ADMIN}/login",
        data={"csrf_token": csrf_of(form.text), "name": name, "password": password, "next": "/"},
        headers={"Origin": "http://testserver"},
    )
    return response.status_code


def carry(cookie_from: TestClient, to: TestClient) -> None:
    """The browser's session cookie, presented to another instance (as a load balancer would)."""
    to.cookies.set("cg_admin", cookie_from.cookies.get("cg_admin") or "", path=ADMIN)


def test_a_logout_on_one_instance_ends_the_session_on_every_instance(tmp_path: Path, store_url: str) -> None:
    with gateway(tmp_path, store_url, "a") as a, gateway(tmp_path, store_url, "b") as b:
        assert log_in(a) == 303
        carry(a, b)
        assert b.get(f"{ADMIN}/").status_code == 200
        csrf = csrf_of(b.get(f"{ADMIN}/").text)
        logout = b.post(f"{ADMIN}/logout", data={"csrf_token": csrf}, headers={"Origin": "http://testserver"})
        assert logout.status_code == 303
        refused = a.get(f"{ADMIN}/events")
        assert refused.status_code == 303 and refused.headers["location"].startswith(f"{ADMIN}/login")


def test_a_logged_out_session_stays_out_after_a_restart(tmp_path: Path, store_url: str) -> None:
    with gateway(tmp_path, store_url, "a") as a:
        assert log_in(a) == 303
        kept = a.cookies.get("cg_admin")
        csrf = csrf_of(a.get(f"{ADMIN}/").text)
        a.post(f"{ADMIN}/logout", data={"csrf_token": csrf}, headers={"Origin": "http://testserver"})
    with gateway(tmp_path, store_url, "a") as restarted:
        restarted.cookies.set("cg_admin", kept or "", path=ADMIN)
        assert restarted.get(f"{ADMIN}/").status_code == 303


def test_a_session_survives_a_restart_until_logout(tmp_path: Path, store_url: str) -> None:
    with gateway(tmp_path, store_url, "a") as a:
        assert log_in(a) == 303
        kept = a.cookies.get("cg_admin")
    with gateway(tmp_path, store_url, "a") as restarted:
        restarted.cookies.set("cg_admin", kept or "", path=ADMIN)
        assert restarted.get(f"{ADMIN}/").status_code == 200


def test_removing_a_user_from_the_config_ends_their_sessions(tmp_path: Path, store_url: str) -> None:
    with gateway(tmp_path, store_url, "a") as a:
        assert log_in(a, "analyst") == 303
        kept = a.cookies.get("cg_admin")
    with gateway(tmp_path, store_url, "a", users=("dpo",)) as without:
        without.cookies.set("cg_admin", kept or "", path=ADMIN)
        assert without.get(f"{ADMIN}/").status_code == 303
    with gateway(tmp_path, store_url, "a") as back:  # put back in the config: the session is still over
        back.cookies.set("cg_admin", kept or "", path=ADMIN)
        assert back.get(f"{ADMIN}/").status_code == 303


def test_a_lockout_holds_on_every_instance_and_across_restarts(tmp_path: Path, store_url: str) -> None:
    with gateway(tmp_path, store_url, "a") as a, gateway(tmp_path, store_url, "b") as b:
        for attempt in range(5):
            assert log_in(a if attempt % 2 else b, password="wrong guess") == 401
        assert log_in(b) == 429
        assert log_in(a) == 429
    with gateway(tmp_path, store_url, "a") as restarted:
        assert log_in(restarted) == 429


def admin_post(client: TestClient, path: str, **form: str) -> str:
    csrf = csrf_of(client.get(f"{ADMIN}/users").text)
    response = client.post(f"{ADMIN}{path}", data={"csrf_token": csrf, **form}, headers={"Origin": "http://testserver"})
    assert response.status_code == 200, response.text
    found = re.search(r'id="secret-value" value="([^"]+)"', response.text)
    return found.group(1) if found else ""


def test_users_and_tokens_made_on_one_instance_hold_on_every_instance_until_ended_there(
    tmp_path: Path, store_url: str
) -> None:
    root = ("root",)
    with gateway(tmp_path, store_url, "a", users=root) as a, gateway(tmp_path, store_url, "b", users=root) as b:
        assert log_in(a, "root") == 303
        password = admin_post(a, "/users/create", name="carol", role="analyst")
        with gateway(tmp_path, store_url, "c", users=("root",)) as carol_on_c:
            assert log_in(carol_on_c, "carol", password) == 303
            assert carol_on_c.get(f"{ADMIN}/events").status_code == 200
            admin_post(a, "/users/update", name="carol", action="disable")  # on instance a
            ended = carol_on_c.get(f"{ADMIN}/events")  # on instance c
            assert ended.status_code == 303 and ended.headers["location"].startswith(f"{ADMIN}/login")
            assert log_in(carol_on_c, "carol", password) == 401
        token = admin_post(a, "/tokens/create", label="export job", role="analyst")
        headers = {"Authorization": f"Bearer {token}"}
        assert b.get(f"{ADMIN}/export.csv", headers=headers).status_code == 200
        token_name = re.search(r'name="token" value="([0-9a-f]{8})"', a.get(f"{ADMIN}/users").text)
        assert token_name
        admin_post(a, "/tokens/revoke", token=token_name.group(1))
        assert b.get(f"{ADMIN}/export.csv", headers=headers).status_code == 401
    with gateway(tmp_path, store_url, "a", users=("root",)) as restarted:  # and across restarts
        assert log_in(restarted, "carol", password) == 401
        assert restarted.get(f"{ADMIN}/export.csv", headers=headers).status_code == 401
