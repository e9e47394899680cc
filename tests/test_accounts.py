"""Logged-in visitors: a user's latest choice applies on their other devices, linked in the log.

Each "device" is its own cookie jar on one test client (one event loop for the real gateway and its real
SQLite log). Middleware mode: the site's own middleware, around the gateway, names the user in the scope.
Proxy mode: an upstream names the user in a response header; a visitor cannot name anyone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway.accounts import USER_ID_SCOPE_KEY
from consent_gateway.config import AccountsConfig, Config, GatewayConfig, parse_config
from consent_gateway.errors import ConfigError
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS
from tests.servers import ServerThread

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
TRACKER = '<script src="https://www.google-analytics.com/analytics.js"></script>'
USER_HEADER = "X-Consent-User"


def page(request: Request) -> HTMLResponse:
    seen = request.headers.get(USER_HEADER, "")
    return HTMLResponse(f"<html><head></head><body>{TRACKER}<p>seen:{seen}</p></body></html>")


def site() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", page)])


class SiteLogin:
    """The site's own authentication, around the gateway: the session cookie names the user."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            cookies = dict(scope["headers"]).get(b"cookie", b"").decode()
            for part in cookies.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "session":
                    scope[USER_ID_SCOPE_KEY] = f"user-{value}"
        await self.app(scope, receive, send)


class Devices:
    """Several browsers sharing one test client: each request goes out with its device's cookie jar."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.jars: dict[str, httpx.Cookies] = {}

    def request(self, device: str, method: str, path: str, **options: Any) -> Any:
        jar = self.client.cookies.jar
        jar.clear()
        for cookie in self.jars.setdefault(device, httpx.Cookies()).jar:
            jar.set_cookie(cookie)
        response = self.client.request(method, path, **options)
        self.jars[device] = httpx.Cookies()
        for cookie in jar:
            self.jars[device].jar.set_cookie(cookie)
        return response

    def login(self, device: str, name: str) -> None:
        self.jars.setdefault(device, httpx.Cookies()).set("session", name, domain="testserver.local")

    def page(self, device: str) -> Any:
        return self.request(device, "GET", "/")

    def choose(self, device: str, action: str) -> Any:
        return self.request(device, "POST", "/_consent/choices", json={"action": action}, headers=SAME_ORIGIN)

    def state(self, device: str) -> Any:
        return self.request(device, "GET", "/_consent/state").json()["consent"]


def tracker_live(response: Any) -> bool:
    return TRACKER in response.text


@pytest.fixture
def middleware_gateway(config: Config) -> ConsentGateway:
    return ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)


@pytest.fixture
def devices(middleware_gateway: ConsentGateway) -> Iterator[Devices]:
    with TestClient(SiteLogin(middleware_gateway), base_url="http://testserver.local") as client:
        yield Devices(client)


def test_a_choice_follows_the_user_to_another_device(devices: Devices, config: Config) -> None:
    devices.login("phone", "alice")
    devices.page("phone")
    chosen = devices.choose("phone", "accept_all").json()

    devices.login("laptop", "alice")
    first = devices.page("laptop")  # no consent cookie yet: the user's latest choice applies
    assert tracker_live(first)
    assert any(h.startswith("cg_consent=") for h in first.headers.get_list("set-cookie"))
    assert devices.state("laptop")["consent_id"] == chosen["consent_id"]
    # each device's event, linked through the user's consent id
    events = devices.request("laptop", "GET", "/_consent/receipt").json()["events"]
    assert [e["action"] for e in events] == ["consent-given", "synced-from-account"]

    assert not tracker_live(devices.page("stranger"))  # not logged in: asked as usual
    devices.login("bob", "bob")
    assert not tracker_live(devices.page("bob"))  # another user

    # the id itself is never stored, only its keyed hash
    db = sqlite3.connect(Path(config.gateway.data_dir) / "consent.db")
    rows = db.execute("SELECT user_key, consent_id FROM user_choices").fetchall()
    assert rows and all("alice" not in key for key, _ in rows)


def test_refusal_and_withdrawal_follow_the_user_too(devices: Devices) -> None:
    devices.login("phone", "alice")
    devices.choose("phone", "accept_all")
    devices.login("tablet", "alice")
    devices.choose("tablet", "reject_all")  # the latest choice, made on another device
    devices.login("laptop", "alice")
    assert not tracker_live(devices.page("laptop"))
    assert devices.state("laptop")["choices"]["analytics"] is False

    devices.request("tablet", "DELETE", "/_consent/choices", headers=SAME_ORIGIN)
    devices.login("desktop", "alice")
    assert not tracker_live(devices.page("desktop"))
    assert devices.state("desktop") is None  # withdrawn: asked again


def test_a_device_with_its_own_valid_choice_keeps_it_without_asking_the_log(
    devices: Devices, middleware_gateway: ConsentGateway
) -> None:
    devices.login("phone", "alice")
    devices.choose("phone", "reject_all")
    calls = []
    log = middleware_gateway.log
    original = log.user_choice

    async def counted(user_key: str) -> Any:
        calls.append(user_key)
        return await original(user_key)

    log.user_choice = counted  # type: ignore[method-assign]
    for _ in range(3):
        assert not tracker_live(devices.page("phone"))
    devices.login("laptop", "bob")
    for _ in range(3):
        devices.page("laptop")  # no choice anywhere: asked once, then cached
    assert len(calls) == 1


def test_proxy_mode_trusts_the_upstream_response_header_and_never_a_visitor(tmp_path: Path) -> None:
    def upstream_page(request: Request) -> HTMLResponse:
        response = page(request)
        session = request.cookies.get("session")
        if session:
            response.headers[USER_HEADER] = f"user-{session}"
        return response

    config = replace(
        parse_config({"accounts": {"user_header": USER_HEADER}}),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / "data"), instance_id="proxy-test"),
    )
    upstream = Starlette(routes=[Route("/{path:path}", upstream_page)])
    gateway = ConsentGateway(upstream, config, secret_keys=TEST_SECRET_KEYS)
    with TestClient(gateway, base_url="http://testserver.local") as client:
        devices = Devices(client)
        devices.login("phone", "alice")
        first = devices.page("phone")
        assert USER_HEADER.lower() not in first.headers  # the upstream's header goes no further
        assert any(h.startswith("cg_user=") and "HttpOnly" in h for h in first.headers.get_list("set-cookie"))
        chosen = devices.choose("phone", "accept_all").json()  # linked through the cg_user cookie

        devices.login("laptop", "alice")
        assert tracker_live(devices.page("laptop"))
        assert devices.state("laptop")["consent_id"] == chosen["consent_id"]

        # a visitor naming alice themselves gets nothing, and the upstream never sees the header
        forged = devices.request("mallory", "GET", "/", headers={USER_HEADER: "user-alice"})
        assert not tracker_live(forged) and "seen:<" in forged.text

        # logged out: the next page comes without the header and the gateway forgets the user
        devices.jars["phone"].delete("session")
        out = devices.page("phone")
        assert any(h.startswith("cg_user=") and "Max-Age=0" in h for h in out.headers.get_list("set-cookie"))


def test_proxy_mode_believes_a_request_header_from_a_trusted_proxy_only(tmp_path: Path) -> None:
    config = replace(
        parse_config({"accounts": {"user_header": USER_HEADER}, "gateway": {"trusted_proxies": ["127.0.0.1"]}}),
        gateway=replace(
            GatewayConfig(), data_dir=str(tmp_path / "data"), instance_id="trusted", trusted_proxies=("127.0.0.1",)
        ),
    )
    gateway = ConsentGateway(site(), config, secret_keys=TEST_SECRET_KEYS)
    with ServerThread(gateway) as server, httpx.Client(base_url=server.url, timeout=30) as phone:
        response = phone.post(
            "/_consent/choices", json={"action": "accept_all"}, headers={**SAME_ORIGIN, USER_HEADER: "user-carol"}
        )
        assert response.status_code == 200
        with httpx.Client(base_url=server.url, timeout=30) as laptop:
            assert tracker_live(laptop.get("/", headers={USER_HEADER: "user-carol"}))
        with httpx.Client(base_url=server.url, timeout=30) as other:
            assert not tracker_live(other.get("/", headers={USER_HEADER: "user-dave"}))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"user_header": "X Consent"}, "accounts.user_header"),
        ({"user_header": "Cookie"}, "accounts.user_header"),
        ({"cache_seconds": -1}, "accounts.cache_seconds"),
    ],
)
def test_accounts_config_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"accounts": table})
    assert raised.value.key == key


def test_accounts_are_off_by_default() -> None:
    assert Config().accounts == AccountsConfig(user_header="", cache_seconds=30.0)


def test_a_users_erasure_on_one_device_unlinks_every_device(devices: Devices) -> None:
    devices.login("phone", "alice")
    old = devices.choose("phone", "accept_all").json()["consent_id"]
    devices.login("laptop", "alice")
    assert tracker_live(devices.page("laptop"))  # the laptop took alice's choice
    erased = devices.request(
        "laptop",
        "POST",
        "/_consent/me/erase",
        data={"consent_id": old, "confirm": "yes"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert erased.status_code == 303
    devices.login("tablet", "alice")
    assert not tracker_live(devices.page("tablet"))  # nothing left to adopt
    assert devices.state("tablet") is None
    # the phone still carries the old id in its cookie, but alice's next choice starts a new history
    assert devices.choose("phone", "reject_all").json()["consent_id"] != old
