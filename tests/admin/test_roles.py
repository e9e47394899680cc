"""Roles: every dashboard route declares the least role it needs, and each role gets exactly that.

The table below is the product's access policy; the test walks the app's own route list, so a route added
without a role, or missing from the table, fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from consent_gateway.admin import build_admin_app
from consent_gateway.admin.roles import ROLES, Role, allows
from consent_gateway.config import AdminUser, Config
from consent_gateway.store import ConsentLog

from .conftest import API_TOKEN, FAST_ARGON2, PREFIX, SECRET_KEYS, VISITOR, Clock, csrf_of, login, mounted

PASSWORD = "a long enough passphrase for every role"
#: (method, path) → the least role that may use it
ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("POST", "/logout"): "viewer",
    ("GET", "/"): "viewer",
    ("GET", "/cookies"): "viewer",
    ("GET", "/integrity"): "viewer",
    ("POST", "/integrity"): "analyst",
    ("GET", "/events"): "analyst",
    ("GET", "/events/{event_id}"): "analyst",
    ("GET", "/visitors"): "analyst",
    ("GET", "/visitors/{consent_id}"): "analyst",
    ("GET", "/export"): "analyst",
    ("GET", "/export.csv"): "analyst",
    ("GET", "/export.jsonl"): "analyst",
    ("GET", "/export.banners.json"): "analyst",
    ("GET", "/banners/{version}.json"): "analyst",
    ("GET", "/erase"): "privacy-officer",
    ("POST", "/erase"): "privacy-officer",
    ("POST", "/erase/confirm"): "privacy-officer",
    ("GET", "/inventory"): "viewer",
    ("GET", "/inventory.json"): "viewer",
    ("GET", "/overview.json"): "viewer",
    ("POST", "/inventory/classify"): "privacy-officer",
    ("POST", "/inventory/unclassify"): "privacy-officer",
    ("GET", "/inventory/export.toml"): "viewer",
    ("GET", "/enforcement"): "viewer",
    ("GET", "/enforcement.json"): "viewer",
    ("GET", "/users"): "admin",
    ("POST", "/users/create"): "admin",
    ("POST", "/users/update"): "admin",
    ("POST", "/tokens/create"): "admin",
    ("POST", "/tokens/revoke"): "admin",
    ("GET", "/{rest:path}"): "viewer",
    ("POST", "/{rest:path}"): "viewer",
}
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/admin.css"), ("GET", "/language")}
PATHS = {"{event_id}": "ev-0001", "{consent_id}": VISITOR, "{rest:path}": "no-such-page"}


@pytest.fixture
def role_app(admin_config: Config, consent_log: ConsentLog, clock: Clock) -> object:
    users = tuple(AdminUser(name=role, password_hash=FAST_ARGON2.hash(PASSWORD), role=role) for role in ROLES)
    config = replace(admin_config, admin=replace(admin_config.admin, users=users))
    return build_admin_app(
        config, consent_log, SECRET_KEYS, clock=clock, environ={"CONSENT_GATEWAY_ADMIN_TOKENS": API_TOKEN}
    )


@pytest.fixture
def role_client(role_app: object) -> Iterator[TestClient]:
    with TestClient(mounted(role_app), base_url="http://testserver", follow_redirects=False) as client:
        yield client


def declared_routes(app: object) -> dict[tuple[str, str], Role | None]:
    found: dict[tuple[str, str], Role | None] = {}
    for route in app.routes:  # type: ignore[attr-defined]
        for method in sorted(route.methods - {"HEAD"}):
            found[(method, route.path)] = getattr(route.endpoint, "needed_role", None)
    return found


def test_every_route_declares_the_role_the_policy_table_gives_it(role_app: object) -> None:
    declared = declared_routes(role_app)
    protected = {key: role for key, role in declared.items() if key not in PUBLIC}
    assert set(declared) >= PUBLIC
    assert all(role is not None for role in protected.values()), [k for k, r in protected.items() if r is None]
    assert protected == ROUTE_ROLES


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_routes_its_role_allows(role_client: TestClient, role: Role) -> None:
    assert login(role_client, role, PASSWORD).status_code == 303  # type: ignore[attr-defined]
    csrf = csrf_of(role_client.get(f"{PREFIX}/").text)
    for (method, path), needed in ROUTE_ROLES.items():
        if path == "/logout":
            continue
        url = PREFIX + path
        for placeholder, value in PATHS.items():
            url = url.replace(placeholder, value)
        if method == "GET":
            response = role_client.get(url)
        else:
            form = {"csrf_token": csrf, "consent_id": "visitor-0003"}
            response = role_client.post(url, data=form, headers={"Origin": "http://testserver"})
        if allows(role, needed):
            assert response.status_code not in (303, 401, 403), (role, method, path, response.status_code)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code)
            assert f"your role ({role}) may not do this: it needs {needed}" in response.text
    logout = role_client.post(f"{PREFIX}/logout", data={"csrf_token": csrf}, headers={"Origin": "http://testserver"})
    assert logout.status_code == 303 and logout.headers["location"] == f"{PREFIX}/login"


def test_an_analyst_searches_and_exports_without_ip_addresses(role_client: TestClient) -> None:
    assert login(role_client, "analyst", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    export = role_client.get(f"{PREFIX}/export.csv")
    assert export.status_code == 200 and "ev-0001" in export.text
    assert "203.0.113." not in export.text and "198.51.100.0" not in export.text
    jsonl = role_client.get(f"{PREFIX}/export.jsonl")
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert records and all("ip" not in r and "user_agent" not in r and "salts" not in r for r in records)
    assert "203.0.113." not in jsonl.text
    # personal columns are not for this role, even asked for by name; the proof columns are
    refused = role_client.get(f"{PREFIX}/export.csv", params={"personal": "yes"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_not_allowed"
    assert "hash" in records[0] and "commitments" in records[0]
    for page in ("/events", "/events/ev-0001", f"/visitors/{VISITOR}"):
        text = role_client.get(PREFIX + page).text
        assert "203.0.113." not in text and "198.51.100.0" not in text, page


def test_a_privacy_officer_exports_ip_addresses(role_client: TestClient) -> None:
    assert login(role_client, "privacy-officer", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    assert "203.0.113.1" in role_client.get(f"{PREFIX}/export.csv").text
    assert "203.0.113.1" in role_client.get(f"{PREFIX}/events/ev-0001").text


def test_a_viewer_sees_charts_but_no_personal_data(role_client: TestClient) -> None:
    assert login(role_client, "viewer", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    overview = role_client.get(f"{PREFIX}/")
    assert overview.status_code == 200 and "<svg" in overview.text
    assert "203.0.113." not in overview.text and "visitor-0" not in overview.text
    refused = role_client.get(f"{PREFIX}/export.csv")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_not_allowed"


def test_an_api_token_has_the_token_role(role_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    export = role_client.get(f"{PREFIX}/export.csv", headers=headers)
    assert export.status_code == 200 and "203.0.113." not in export.text  # analyst by default
    erase = role_client.post(
        f"{PREFIX}/erase/confirm", data={"consent_id": VISITOR}, headers={**headers, "Origin": "http://testserver"}
    )
    assert erase.status_code == 403 and erase.json()["error"]["code"] == "role_not_allowed"
