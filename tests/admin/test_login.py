"""Logging in and out: cookie flags, same answer for unknown users, lockout, tokens."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from consent_gateway.admin import build_admin_app
from consent_gateway.config import AdminConfig, AdminUser, Config
from consent_gateway.store import ConsentLog

from .conftest import (
    API_TOKEN,
    AUDITOR_PASSWORD,
    DPO_PASSWORD,
    PREFIX,
    SECRET_KEYS,
    Clock,
    csrf_of,
    login,
    make_events,
    mounted,
    scrypt_hash,
)


def session_cookie_header(response: object) -> str:
    headers = [v for k, v in response.headers.multi_items() if k == "set-cookie"]  # type: ignore[attr-defined]
    found = [h for h in headers if h.startswith("cg_admin=")]
    assert found, headers
    return found[-1]


def test_login_with_the_right_password_opens_a_strict_httponly_session(client: TestClient) -> None:
    response = login(client, next_path="/events?country=FR")
    assert response.status_code == 303
    assert response.headers["location"] == f"{PREFIX}/events?country=FR"
    cookie = session_cookie_header(response).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert f"path={PREFIX}".lower() in cookie
    assert "secure" not in cookie  # plain http here
    page = client.get(f"{PREFIX}/")
    assert page.status_code == 200
    assert "Signed in as <strong>dpo</strong>" in page.text


def test_the_session_cookie_is_secure_over_https(admin_app: object) -> None:
    with TestClient(admin_app, base_url="https://testserver", follow_redirects=False) as client:  # type: ignore[arg-type]
        response = login(client)
        assert response.status_code == 303
        assert "secure" in session_cookie_header(response).lower()


def test_a_scrypt_user_logs_in(client: TestClient) -> None:
    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 303
    assert "Signed in as <strong>auditor</strong>" in client.get(f"{PREFIX}/").text


def test_login_never_redirects_off_the_dashboard(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = login(client, next_path=target)
        assert response.headers["location"] == f"{PREFIX}/"
        client.cookies.clear()


def _failure_text(response: object, name: str) -> str:
    # The form echoes the typed name; everything else must be identical.
    return re.sub(r'name="csrf_token" value="[^"]+"', "", response.text.replace(name, "NAME"))  # type: ignore[attr-defined]


def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient) -> None:
    wrong = login(client, "dpo", "not the password")
    unknown = login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text
    assert _failure_text(wrong, "dpo") == _failure_text(unknown, "nobody")
    assert "cg_admin=" not in str(wrong.headers.get("set-cookie", "")) or "Signed in" not in wrong.text


@pytest.fixture
def slow_hash_client(admin_config: Config, consent_log: ConsentLog, clock: Clock) -> Iterator[TestClient]:
    """One user whose scrypt hash costs ~30 ms, and no lockout in the way of timing."""
    hashed = scrypt_hash(DPO_PASSWORD, n=2**14)  # ~30 ms a check
    admin = AdminConfig(
        users=(AdminUser("dpo", hashed),), login_max_failures=1000, audit_log=admin_config.admin.audit_log
    )
    app = build_admin_app(replace(admin_config, admin=admin), consent_log, SECRET_KEYS, clock=clock, environ={})
    with TestClient(mounted(app), follow_redirects=False) as client:
        yield client


def test_an_unknown_user_costs_as_much_as_a_wrong_password(slow_hash_client: TestClient) -> None:
    def timed(name: str) -> float:
        page = slow_hash_client.get(f"{PREFIX}/login")
        started = time.perf_counter()
        response = slow_hash_client.post(
            f"{PREFIX}/login", data={"csrf_token": csrf_of(page.text), "name": name, "password": "wrong"}
        )
        assert response.status_code == 401
        return time.perf_counter() - started

    wrong = statistics.median(timed("dpo") for _ in range(5))
    unknown = statistics.median(timed(f"nobody{i}") for i in range(5))
    assert wrong > 0.01  # the hash really is checked
    assert 0.5 < unknown / wrong < 2.0


def test_five_failures_lock_the_user_out_even_with_the_right_password(client: TestClient, clock: Clock) -> None:
    for _ in range(5):
        assert login(client, "dpo", "guess").status_code == 401
    locked = login(client, "dpo", DPO_PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in locked.text
    assert "Signed in" not in client.get(f"{PREFIX}/", follow_redirects=True).text
    clock.advance(15 * 60 + 1)
    assert login(client, "dpo", DPO_PASSWORD).status_code == 303


def test_an_unknown_user_name_is_locked_out_the_same_way(client: TestClient) -> None:
    answers = [login(client, "ghost", "guess").status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]


def test_failures_from_one_address_lock_that_address_for_every_name(client: TestClient) -> None:
    for i in range(5):
        assert login(client, f"user{i}", "guess").status_code == 401
    assert login(client, "auditor", AUDITOR_PASSWORD).status_code == 429


def test_logout_ends_the_session_even_for_a_copied_cookie(logged_in: TestClient) -> None:
    stolen = logged_in.cookies.get("cg_admin")
    page = logged_in.get(f"{PREFIX}/")
    response = logged_in.post(f"{PREFIX}/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == f"{PREFIX}/login"
    assert 'cg_admin=""' in session_cookie_header(response) or "max-age=0" in session_cookie_header(response).lower()
    logged_in.cookies.clear()
    logged_in.cookies.set("cg_admin", stolen)
    assert logged_in.get(f"{PREFIX}/").status_code == 303


def test_an_api_token_opens_the_exports_without_a_session(client: TestClient) -> None:
    response = client.get(f"{PREFIX}/export.jsonl", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 200
    assert response.text.count("\n") == len(make_events())
    assert "set-cookie" not in response.headers


def test_a_bad_token_gets_401_json(client: TestClient) -> None:
    for header in (f"Bearer {API_TOKEN}x", "Bearer ", "Basic ZHBvOnNlY3JldA==", API_TOKEN):
        response = client.get(f"{PREFIX}/export.csv", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_bad_tokens_from_one_address_are_throttled(client: TestClient) -> None:
    codes = [
        client.get(f"{PREFIX}/export.csv", headers={"Authorization": f"Bearer wrong-{i:020d}"}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]
    good = client.get(f"{PREFIX}/export.csv", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert good.status_code == 429


def test_a_token_typed_in_the_login_form_opens_a_session(client: TestClient) -> None:
    assert login(client, "", API_TOKEN).status_code == 303
    assert "Signed in as <strong>token:" in client.get(f"{PREFIX}/").text


def test_without_users_or_tokens_the_login_page_says_how_to_add_them(
    admin_config: Config, consent_log: ConsentLog
) -> None:
    app = build_admin_app(
        replace(admin_config, admin=AdminConfig(audit_log=admin_config.admin.audit_log)),
        consent_log,
        SECRET_KEYS,
        environ={},
    )
    with TestClient(mounted(app)) as client:
        page = client.get(f"{PREFIX}/login")
        assert "No dashboard user is configured" in page.text
        assert login(client, "admin", "admin").status_code == 401


async def test_a_burst_of_parallel_guesses_is_stopped_at_the_limit(admin_app: object) -> None:
    import asyncio

    import httpx

    transport = httpx.ASGITransport(app=admin_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get(f"{PREFIX}/login")
        token = csrf_of(page.text)

        async def guess(i: int) -> int:
            data = {"csrf_token": token, "name": "dpo", "password": f"guess {i}"}
            return (await client.post(f"{PREFIX}/login", data=data)).status_code

        codes = await asyncio.gather(*(guess(i) for i in range(12)))
    assert sorted(codes) == [401] * 5 + [429] * 7
