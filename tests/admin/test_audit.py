"""Every dashboard action leaves one JSON line in the admin audit log: who, when, what, on what."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.testclient import TestClient

from consent_gateway.config import Config

from .conftest import API_TOKEN, PREFIX, VISITOR, csrf_of, login


def audit_lines(config: Config) -> list[dict[str, object]]:
    path = Path(config.admin.audit_log)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_admin_action_is_audited(client: TestClient, admin_config: Config) -> None:
    login(client, "dpo", "wrong")
    login(client, "nobody", "wrong")
    login(client)
    client.get(f"{PREFIX}/events", params={"country": "FR"})
    client.get(f"{PREFIX}/events/ev-0003")
    client.get(f"{PREFIX}/visitors/{VISITOR}")
    client.get(f"{PREFIX}/export.csv", params={"action": "consent-given"})
    page = client.get(f"{PREFIX}/integrity")
    client.post(f"{PREFIX}/integrity", data={"csrf_token": csrf_of(page.text)})
    review = client.post(f"{PREFIX}/erase", data={"consent_id": VISITOR, "csrf_token": csrf_of(page.text)})
    client.post(
        f"{PREFIX}/erase/confirm", data={"consent_id": VISITOR, "csrf_token": csrf_of(review.text), "confirm": "yes"}
    )
    client.post(f"{PREFIX}/logout", data={"csrf_token": csrf_of(page.text)})
    client.get(f"{PREFIX}/export.jsonl", headers={"Authorization": "Bearer not-a-valid-token-at-all"})
    client.get(f"{PREFIX}/export.jsonl", headers={"Authorization": f"Bearer {API_TOKEN}"})

    lines = audit_lines(admin_config)
    summary = [(line["action"], line["user"], line["target"], line["outcome"]) for line in lines]
    assert summary[:3] == [
        ("login-failed", "dpo", None, "refused"),
        ("login-failed", "nobody", None, "refused"),
        ("login", "dpo", None, "ok"),
    ]
    assert ("search", "dpo", "country=FR", "ok") in summary
    assert ("view-event", "dpo", "ev-0003", "ok") in summary
    assert ("view-history", "dpo", VISITOR, "ok") in summary
    assert ("export", "dpo", "action=consent-given", "ok") in summary
    assert ("verify", "dpo", None, "ok") in summary
    assert ("erase", "dpo", VISITOR, "started") in summary
    assert ("erase", "dpo", VISITOR, "ok") in summary
    assert ("logout", "dpo", None, "ok") in summary
    assert ("token-failed", None, f"{PREFIX}/export.jsonl", "refused") in summary
    token_export = [s for s in summary if s[0] == "export" and str(s[1]).startswith("token:")]
    assert token_export and API_TOKEN not in json.dumps(lines)
    erased = next(line for line in lines if line["action"] == "erase" and line["outcome"] == "ok")
    assert erased["events"] == 3
    for line in lines:
        assert str(line["time"]).startswith("2026-03-10T12:00:00.000+00:00")
        assert line["ip"]


def test_an_export_that_cannot_be_audited_is_refused(logged_in: TestClient, admin_config: Config) -> None:
    path = Path(admin_config.admin.audit_log)
    path.unlink()
    path.mkdir()  # a directory where the file should be: every append fails
    response = logged_in.get(f"{PREFIX}/export.csv")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "audit_unavailable"
