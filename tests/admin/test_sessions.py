"""Session lifetime: idle timeout, absolute lifetime, key rotation, salt separation."""

from __future__ import annotations

from itsdangerous import URLSafeSerializer
from starlette.testclient import TestClient

from consent_gateway.admin.sessions import SessionManager
from consent_gateway.signing import CONSENT_SALT

from .conftest import PREFIX, SECRET_KEYS, Clock


def test_a_session_expires_after_30_idle_minutes(logged_in: TestClient, clock: Clock) -> None:
    clock.advance(29 * 60)
    assert logged_in.get(f"{PREFIX}/").status_code == 200
    clock.advance(31 * 60)
    response = logged_in.get(f"{PREFIX}/events")
    assert response.status_code == 303
    assert response.headers["location"] == f"{PREFIX}/login?next=%2Fevents"


def test_activity_keeps_a_session_alive(logged_in: TestClient, clock: Clock) -> None:
    for _ in range(4):
        clock.advance(25 * 60)
        assert logged_in.get(f"{PREFIX}/cookies").status_code == 200  # 100 minutes in all, never 30 idle


def test_a_session_ends_after_its_absolute_lifetime_despite_activity(logged_in: TestClient, clock: Clock) -> None:
    for _ in range(12 * 3):
        clock.advance(20 * 60)
        assert logged_in.get(f"{PREFIX}/cookies").status_code == 200
    clock.advance(20 * 60)  # 12 h 20 min after login
    assert logged_in.get(f"{PREFIX}/cookies").status_code == 303


def test_a_session_signed_with_an_older_key_still_verifies(logged_in: TestClient, clock: Clock) -> None:
    both = SessionManager(SECRET_KEYS, idle_timeout_seconds=1800, max_age_seconds=3600, clock=clock)
    older_only = SessionManager(SECRET_KEYS[1:], idle_timeout_seconds=1800, max_age_seconds=3600, clock=clock)
    live = both.loads(logged_in.cookies.get("cg_admin"))
    assert live is not None
    logged_in.cookies.clear()
    logged_in.cookies.set("cg_admin", older_only.dumps(live), path=PREFIX)
    assert logged_in.get(f"{PREFIX}/").status_code == 200


def test_a_validly_signed_session_the_store_does_not_list_is_refused(logged_in: TestClient, clock: Clock) -> None:
    """A cookie signed with the key but never logged in (or logged out) opens nothing."""
    manager = SessionManager(SECRET_KEYS, idle_timeout_seconds=1800, max_age_seconds=3600, clock=clock)
    logged_in.cookies.clear()
    logged_in.cookies.set("cg_admin", manager.dumps(manager.new("dpo")), path=PREFIX)
    assert logged_in.get(f"{PREFIX}/").status_code == 303


def test_a_value_signed_for_another_purpose_is_not_a_session(client: TestClient, clock: Clock) -> None:
    payload = {"s": "sid", "u": "dpo", "c": "csrf", "i": clock.now, "l": clock.now}
    forged = URLSafeSerializer(list(reversed(SECRET_KEYS)), salt=CONSENT_SALT).dumps(payload)
    client.cookies.set("cg_admin", forged, path=PREFIX)
    assert client.get(f"{PREFIX}/").status_code == 303


def test_a_session_from_the_future_is_refused(client: TestClient, clock: Clock) -> None:
    manager = SessionManager(
        SECRET_KEYS, idle_timeout_seconds=1800, max_age_seconds=3600, clock=lambda: clock.now + 3600
    )
    client.cookies.set("cg_admin", manager.dumps(manager.new("dpo")), path=PREFIX)
    assert client.get(f"{PREFIX}/").status_code == 303
