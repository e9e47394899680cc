"""The dashboard as the gateway serves it: under ``/_consent/admin`` of a real ConsentGateway."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from consent_gateway import ConsentGateway
from consent_gateway._types import Receive, Scope, Send
from consent_gateway.config import Config

from .conftest import DPO_PASSWORD, SECRET_KEYS, csrf_of


async def site(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await PlainTextResponse("the site")(scope, receive, send)


def test_the_gateway_serves_the_dashboard_behind_login(admin_config: Config) -> None:
    gateway = ConsentGateway(site, admin_config, secret_keys=SECRET_KEYS)
    with TestClient(gateway, follow_redirects=False) as client:
        bare = client.get("/_consent/admin")
        assert bare.status_code in (303, 307, 308), bare.status_code  # to the slash, then to login
        start = client.get("/_consent/admin/")
        assert start.status_code == 303
        assert start.headers["location"] == "/_consent/admin/login?next=%2F"
        page = client.get(start.headers["location"])
        assert page.status_code == 200 and 'href="/_consent/admin/admin.css"' in page.text
        response = client.post(
            "/_consent/admin/login",
            data={"csrf_token": csrf_of(page.text), "name": "dpo", "password": DPO_PASSWORD, "next": "/"},
        )
        assert response.status_code == 303 and response.headers["location"] == "/_consent/admin/"
        assert "path=/_consent/admin" in response.headers["set-cookie"].lower()
        overview = client.get("/_consent/admin/")
        assert overview.status_code == 200 and "Consent rate per category over time" in overview.text
        assert client.get("/_consent/admin/admin.css").headers["content-type"].startswith("text/css")
        # The session cookie never reaches the site itself.
        assert client.get("/").text == "the site"
