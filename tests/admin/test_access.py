"""Nothing on the dashboard without login; CSRF and same-origin checks on every form; security headers."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from consent_gateway.store import ConsentLog

from .conftest import PREFIX, VISITOR, csrf_of, login

PAGES = [
    "/",
    "/?days=7",
    "/events",
    "/events?country=FR",
    "/events/ev-0001",
    "/visitors",
    f"/visitors/{VISITOR}",
    "/export",
    "/erase",
    "/integrity",
    "/cookies",
    "/no-such-page",
]
DATA = ["/export.csv", "/export.jsonl", f"/export.jsonl?consent_id={VISITOR}"]
POSTS = ["/logout", "/erase", "/erase/confirm", "/integrity"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_redirects_to_login_without_a_session(client: TestClient, path: str) -> None:
    response = client.get(PREFIX + path)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{PREFIX}/login?next=")
    assert VISITOR not in response.text and "203.0.113" not in response.text


@pytest.mark.parametrize("path", DATA)
def test_every_export_answers_401_json_without_credentials(client: TestClient, path: str) -> None:
    response = client.get(PREFIX + path)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "log in to the dashboard or send Authorization: Bearer <token>"}
    }


@pytest.mark.parametrize("path", POSTS)
def test_every_form_action_refuses_without_a_session(client: TestClient, consent_log: ConsentLog, path: str) -> None:
    response = client.post(PREFIX + path, data={"consent_id": VISITOR, "confirm": "yes"})
    assert response.status_code == 303 and "/login" in response.headers["location"]
    assert all(e.ip for e in asyncio.run(consent_log.history(VISITOR)))


def test_a_forged_session_cookie_is_not_a_session(client: TestClient) -> None:
    login(client)
    value = client.cookies.get("cg_admin")
    assert value
    client.cookies.clear()
    client.cookies.set("cg_admin", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path=PREFIX)
    assert client.get(PREFIX + "/").status_code == 303


def test_the_login_page_after_login_goes_to_the_overview(logged_in: TestClient) -> None:
    response = logged_in.get(f"{PREFIX}/login")
    assert response.status_code == 303 and response.headers["location"] == f"{PREFIX}/"


def _erase_review(client: TestClient, **fields: str) -> object:
    return client.post(f"{PREFIX}/erase", data={"consent_id": VISITOR, **fields})


def test_a_form_without_its_csrf_token_is_refused(logged_in: TestClient) -> None:
    response = _erase_review(logged_in)
    assert response.status_code == 403


def test_a_form_with_a_wrong_csrf_token_is_refused(logged_in: TestClient) -> None:
    assert _erase_review(logged_in, csrf_token="x" * 32).status_code == 403


def test_a_csrf_token_of_another_session_is_refused(admin_app: object, logged_in: TestClient) -> None:
    with TestClient(admin_app, follow_redirects=False) as other:  # type: ignore[arg-type]
        login(other)
        foreign_token = csrf_of(other.get(f"{PREFIX}/erase").text)
    assert _erase_review(logged_in, csrf_token=foreign_token).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "null"},
    ],
)
def test_a_cross_site_form_is_refused_even_with_the_right_token(logged_in: TestClient, headers: dict[str, str]) -> None:
    token = csrf_of(logged_in.get(f"{PREFIX}/erase").text)
    response = logged_in.post(f"{PREFIX}/erase", data={"consent_id": VISITOR, "csrf_token": token}, headers=headers)
    assert response.status_code == 403


def test_a_same_origin_form_with_its_token_is_accepted(logged_in: TestClient) -> None:
    token = csrf_of(logged_in.get(f"{PREFIX}/erase").text)
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    response = logged_in.post(f"{PREFIX}/erase", data={"consent_id": VISITOR, "csrf_token": token}, headers=headers)
    assert response.status_code == 200
    assert "Confirm erasure" in response.text


def test_the_login_form_needs_its_csrf_token(client: TestClient) -> None:
    client.get(f"{PREFIX}/login")
    response = client.post(f"{PREFIX}/login", data={"name": "dpo", "password": "x"})
    assert response.status_code == 403
    response = client.post(f"{PREFIX}/login", data={"name": "dpo", "password": "x", "csrf_token": "forged"})
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/login", "/", "/events", "/export.csv", "/no-such-page", "/admin.css"])
def test_every_answer_carries_the_security_headers(logged_in: TestClient, path: str) -> None:
    response = logged_in.get(PREFIX + path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_security_headers_are_there_before_login_too(client: TestClient) -> None:
    for path in ("/", "/export.csv", "/login"):
        response = client.get(PREFIX + path)
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
