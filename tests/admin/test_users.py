"""The admin's users and tokens page: users and tokens made, changed and ended from the dashboard, layered on
the config's (which stay read-only), every change audited and CSRF-checked, secrets shown once."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from consent_gateway.admin import build_admin_app
from consent_gateway.admin.directory import DIRECTORY_DOCUMENT
from consent_gateway.config import AdminUser, Config
from consent_gateway.store import ConsentLog

from .conftest import API_TOKEN, FAST_ARGON2, PREFIX, SECRET_KEYS, Clock, csrf_of, login, mounted

ROOT_PASSWORD = "the admin's own long passphrase"


@pytest.fixture
def users_config(admin_config: Config) -> Config:
    root = AdminUser(name="root", password_hash=FAST_ARGON2.hash(ROOT_PASSWORD), role="admin")
    return replace(admin_config, admin=replace(admin_config.admin, users=(*admin_config.admin.users, root)))


@pytest.fixture
def app(users_config: Config, consent_log: ConsentLog, clock: Clock) -> object:
    return mounted(
        build_admin_app(
            users_config, consent_log, SECRET_KEYS, clock=clock, environ={"CONSENT_GATEWAY_ADMIN_TOKENS": API_TOKEN}
        )
    )


def browser(app: object) -> TestClient:
    return TestClient(app, base_url="http://testserver", follow_redirects=False)  # type: ignore[arg-type]


@pytest.fixture
def admin(app: object) -> Iterator[TestClient]:
    with browser(app) as client:
        assert login(client, "root", ROOT_PASSWORD).status_code == 303  # type: ignore[attr-defined]
        yield client


def post(client: TestClient, path: str, **form: str) -> object:
    csrf = csrf_of(client.get(f"{PREFIX}/users").text)
    return client.post(f"{PREFIX}{path}", data={"csrf_token": csrf, **form}, headers={"Origin": "http://testserver"})


def shown_secret(html: str) -> str:
    found = re.search(r'id="secret-value" value="([^"]+)"', html)
    assert found, "no secret on the page"
    return found.group(1)


def audit_lines(config: Config) -> list[dict[str, object]]:
    path = Path(config.admin.audit_log)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def make_user(admin: TestClient, name: str, role: str) -> str:
    made = post(admin, "/users/create", name=name, role=role)
    assert made.status_code == 200, made.text  # type: ignore[attr-defined]
    return shown_secret(made.text)  # type: ignore[attr-defined]


def test_an_admin_sees_every_user_and_token_with_its_role_the_configs_marked_read_only(admin: TestClient) -> None:
    page = admin.get(f"{PREFIX}/users")
    assert page.status_code == 200
    text = page.text
    for name, role in (("dpo", "privacy-officer"), ("auditor", "analyst"), ("root", "admin")):
        row = re.search(rf'<tr data-name="{name}">(.*?)</tr>', text, re.S)
        assert row and role in row.group(1) and "read-only" in row.group(1), name
    assert re.search(r'<tr data-name="token:[0-9a-f]{8}">.*?analyst.*?read-only', text, re.S)
    assert ">Users and tokens</a>" in text  # in the admin's menu


def test_a_user_made_here_logs_in_with_the_password_shown_once_and_has_the_role_given(
    app: object, admin: TestClient, users_config: Config, consent_log: ConsentLog
) -> None:
    password = make_user(admin, "carol", "analyst")
    assert len(password) >= 20
    assert password not in admin.get(f"{PREFIX}/users").text  # never shown again
    stored = asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT))
    assert stored is not None and password not in stored.body and "$argon2id$" in stored.body
    with browser(app) as carol:
        assert login(carol, "carol", password).status_code == 303  # type: ignore[attr-defined]
        assert carol.get(f"{PREFIX}/events").status_code == 200
        assert carol.get(f"{PREFIX}/erase").status_code == 403  # an analyst
        assert carol.get(f"{PREFIX}/users").status_code == 403
        assert ">Users and tokens</a>" not in carol.get(f"{PREFIX}/").text
    made = [line for line in audit_lines(users_config) if line["action"] == "user-create"]
    assert made == [made[0]] and made[0]["user"] == "root" and made[0]["target"] == "user:carol"
    assert password not in Path(users_config.admin.audit_log).read_text()


def test_a_role_change_applies_at_the_users_next_request(app: object, admin: TestClient) -> None:
    password = make_user(admin, "carol", "analyst")
    with browser(app) as carol:
        assert login(carol, "carol", password).status_code == 303  # type: ignore[attr-defined]
        assert carol.get(f"{PREFIX}/erase").status_code == 403
        assert post(admin, "/users/update", name="carol", action="role", role="privacy-officer").status_code == 200  # type: ignore[attr-defined]
        assert carol.get(f"{PREFIX}/erase").status_code == 200
        assert post(admin, "/users/update", name="carol", action="role", role="viewer").status_code == 200  # type: ignore[attr-defined]
        assert carol.get(f"{PREFIX}/events").status_code == 403


def test_disabling_or_removing_a_user_ends_their_sessions_and_refuses_their_login(
    app: object, admin: TestClient, users_config: Config
) -> None:
    password = make_user(admin, "carol", "analyst")
    with browser(app) as carol:
        assert login(carol, "carol", password).status_code == 303  # type: ignore[attr-defined]
        assert post(admin, "/users/update", name="carol", action="disable").status_code == 200  # type: ignore[attr-defined]
        ended = carol.get(f"{PREFIX}/events")
        assert ended.status_code == 303 and ended.headers["location"].startswith(f"{PREFIX}/login")
        assert login(carol, "carol", password).status_code == 401  # type: ignore[attr-defined]
        assert post(admin, "/users/update", name="carol", action="enable").status_code == 200  # type: ignore[attr-defined]
        assert login(carol, "carol", password).status_code == 303  # type: ignore[attr-defined]
        assert post(admin, "/users/update", name="carol", action="remove").status_code == 200  # type: ignore[attr-defined]
        assert carol.get(f"{PREFIX}/events").status_code == 303
        assert login(carol, "carol", password).status_code == 401  # type: ignore[attr-defined]
    assert 'data-name="carol"' not in admin.get(f"{PREFIX}/users").text
    actions = [(line["action"], line["target"]) for line in audit_lines(users_config) if line["user"] == "root"]
    for action in ("user-create", "user-disable", "user-enable", "user-remove"):
        assert (action, "user:carol") in actions


def test_a_new_password_replaces_the_old_one(app: object, admin: TestClient) -> None:
    old = make_user(admin, "carol", "viewer")
    reset = post(admin, "/users/update", name="carol", action="reset")
    new = shown_secret(reset.text)  # type: ignore[attr-defined]
    assert new != old
    with browser(app) as carol:
        assert login(carol, "carol", old).status_code == 401  # type: ignore[attr-defined]
        assert login(carol, "carol", new).status_code == 303  # type: ignore[attr-defined]


def test_a_token_made_here_is_shown_once_acts_with_its_role_and_stops_when_revoked(
    admin: TestClient, users_config: Config
) -> None:
    made = post(admin, "/tokens/create", label="nightly export", role="privacy-officer")
    assert made.status_code == 200  # type: ignore[attr-defined]
    token = shown_secret(made.text)  # type: ignore[attr-defined]
    name = re.search(r"Token (token:[0-9a-f]{8}) made", made.text)  # type: ignore[attr-defined]
    assert name
    listing = admin.get(f"{PREFIX}/users").text
    assert token not in listing and "nightly export" in listing and name.group(1) in listing
    with TestClient(admin.app, base_url="http://testserver") as api:
        headers = {"Authorization": f"Bearer {token}"}
        export = api.get(f"{PREFIX}/export.csv", headers=headers)
        assert export.status_code == 200 and "203.0.113.1" in export.text  # a privacy officer sees IPs
        assert api.get(f"{PREFIX}/users", headers=headers).status_code == 403
        assert post(admin, "/tokens/revoke", token=name.group(1)).status_code == 200  # type: ignore[attr-defined]
        revoked = api.get(f"{PREFIX}/export.csv", headers=headers)
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthorized"
    lines = [line for line in audit_lines(users_config) if line["target"] == name.group(1)]
    assert [line["action"] for line in lines] == ["token-create", "token-revoke"]
    assert token not in Path(users_config.admin.audit_log).read_text()


def test_the_configs_users_cannot_be_changed_or_shadowed_here(admin: TestClient, consent_log: ConsentLog) -> None:
    assert post(admin, "/users/create", name="dpo", role="admin").status_code == 409  # type: ignore[attr-defined]
    refused = post(admin, "/users/update", name="dpo", action="disable")
    assert refused.status_code == 409 and "[[admin.users]]" in refused.text  # type: ignore[attr-defined]
    assert asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT)) is None


def test_an_admin_made_here_cannot_lock_themselves_out(app: object, admin: TestClient) -> None:
    password = make_user(admin, "ops", "admin")
    with browser(app) as ops:
        assert login(ops, "ops", password).status_code == 303  # type: ignore[attr-defined]
        for form in ({"action": "disable"}, {"action": "remove"}, {"action": "role", "role": "analyst"}):
            refused = post(ops, "/users/update", name="ops", **form)
            text = refused.text  # type: ignore[attr-defined]
            assert refused.status_code == 409 and ("yourself" in text or "your own" in text)  # type: ignore[attr-defined]
        assert ops.get(f"{PREFIX}/users").status_code == 200  # still an admin


@pytest.mark.parametrize(
    ("path", "form", "status"),
    [
        ("/users/create", {"name": "", "role": "viewer"}, 400),
        ("/users/create", {"name": "bad name", "role": "viewer"}, 400),
        ("/users/create", {"name": "token:abc", "role": "viewer"}, 400),
        ("/users/create", {"name": "eve", "role": "root"}, 400),
        ("/users/update", {"name": "nobody", "action": "disable"}, 409),
        ("/users/update", {"name": "nobody", "action": "explode"}, 400),
        ("/tokens/create", {"label": "", "role": "viewer"}, 400),
        ("/tokens/create", {"label": "x" * 65, "role": "viewer"}, 400),
        ("/tokens/revoke", {"token": "token:00000000"}, 409),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_changes_nothing(
    admin: TestClient, consent_log: ConsentLog, path: str, form: dict[str, str], status: int
) -> None:
    refused = post(admin, path, **form)
    assert refused.status_code == status  # type: ignore[attr-defined]
    assert 'role="alert"' in refused.text and "Nothing changed" in refused.text  # type: ignore[attr-defined]
    assert asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT)) is None


def test_a_form_without_the_csrf_token_or_from_another_site_changes_nothing(
    admin: TestClient, consent_log: ConsentLog
) -> None:
    csrf = csrf_of(admin.get(f"{PREFIX}/users").text)
    no_token = admin.post(f"{PREFIX}/users/create", data={"name": "eve", "role": "admin"})
    assert no_token.status_code == 403
    cross_site = admin.post(
        f"{PREFIX}/users/create",
        data={"csrf_token": csrf, "name": "eve", "role": "admin"},
        headers={"Origin": "http://evil.example"},
    )
    assert cross_site.status_code == 403
    assert asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT)) is None


def test_nothing_changes_when_the_audit_log_cannot_be_written(
    app: object, admin: TestClient, users_config: Config, consent_log: ConsentLog
) -> None:
    audit = Path(users_config.admin.audit_log)
    audit.unlink()
    audit.mkdir()  # a folder where the file should be: every write fails
    refused = post(admin, "/users/create", name="eve", role="admin")
    assert refused.status_code == 503 and "audit log cannot be written" in refused.text  # type: ignore[attr-defined]
    assert asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT)) is None


def test_lower_roles_cannot_make_users_or_tokens(app: object, consent_log: ConsentLog) -> None:
    with browser(app) as dpo:
        assert login(dpo).status_code == 303  # type: ignore[attr-defined]
        csrf = csrf_of(dpo.get(f"{PREFIX}/").text)
        for path, form in (("/users/create", {"name": "eve", "role": "admin"}), ("/tokens/create", {"label": "x"})):
            refused = dpo.post(f"{PREFIX}{path}", data={"csrf_token": csrf, **form})
            assert refused.status_code == 403 and "needs admin" in refused.text
        assert dpo.get(f"{PREFIX}/users").status_code == 403
    assert asyncio.run(consent_log.document_get(DIRECTORY_DOCUMENT)) is None


def test_the_users_page_and_its_messages_are_in_french_for_a_french_browser(admin: TestClient) -> None:
    french = {"Accept-Language": "fr-FR,fr;q=0.9"}
    page = html.unescape(admin.get(f"{PREFIX}/users", headers=french).text)
    assert '<html lang="fr">' in page and "<h1>Utilisateurs et jetons</h1>" in page
    assert "Créer l'utilisateur" in page and "Jetons d'API" in page and "Users and tokens" not in page
    csrf = csrf_of(page)
    made = admin.post(f"{PREFIX}/users/create", data={"csrf_token": csrf, "name": "camille", "role": "analyst"},
                      headers={"Origin": "http://testserver", **french})  # fmt: skip
    text = html.unescape(made.text)
    assert made.status_code == 200 and "Utilisateur camille créé (analyst)." in text
    assert "affiché cette seule fois" in text.replace("<strong>", "").replace("</strong>", "")
    refused = admin.post(f"{PREFIX}/users/create", data={"csrf_token": csrf, "name": "-bad", "role": "analyst"},
                         headers={"Origin": "http://testserver", **french})  # fmt: skip
    assert refused.status_code == 400 and "Rien n'a changé : Un nom d'utilisateur fait" in html.unescape(refused.text)
