"""The middleware around real ASGI apps: headers, cookies, streaming, encodings, scopes."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse as FastAPIHTMLResponse
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent_gateway import metrics
from consent_gateway.config import Config
from consent_gateway.middleware import ConsentGateway
from consent_gateway.visitor import DECISION_SCOPE_KEY
from tests.conftest import TEST_SECRET_KEYS

GTAG = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-TEST"></script>'
PAGE = f"<!doctype html><html lang=en><head><title>t</title>{GTAG}</head><body><p>Hello</p></body></html>"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def page(request: Any) -> Response:
    response = HTMLResponse(PAGE)
    response.set_cookie("_ga", "GA1.1.123.456")
    response.set_cookie("session", "s1")
    response.set_cookie("cg_consent", "from-the-site")
    return response


def starlette_site() -> Starlette:
    return Starlette(
        routes=[
            Route("/", page),
            Route("/api", lambda r: JSONResponse({"ok": True})),
            Route(
                "/gzip",
                lambda r: Response(
                    gzip.compress(PAGE.encode()), media_type="text/html", headers={"Content-Encoding": "gzip"}
                ),
            ),
            Route(
                "/br",
                lambda r: Response(
                    brotli.compress(PAGE.encode()), media_type="text/html", headers={"Content-Encoding": "br"}
                ),
            ),
            Route(
                "/deflate",
                lambda r: Response(
                    zlib.compress(PAGE.encode()), media_type="text/html", headers={"Content-Encoding": "deflate"}
                ),
            ),
            Route("/utf16", lambda r: Response(PAGE.encode("utf-16"), media_type="text/html; charset=utf-16")),
            Route("/empty", lambda r: Response(status_code=204)),
            Route(
                "/csp",
                lambda r: HTMLResponse(
                    PAGE, headers={"Content-Security-Policy": "script-src 'nonce-r4nd0m' 'strict-dynamic'"}
                ),
            ),
            Route(
                "/public",
                lambda r: HTMLResponse(
                    PAGE, headers={"Cache-Control": "public, max-age=600, s-maxage=3600", "Vary": "Accept-Encoding"}
                ),
            ),
        ]
    )


@pytest.fixture
def gateway(config: Config) -> ConsentGateway:
    return ConsentGateway(starlette_site(), config, secret_keys=TEST_SECRET_KEYS)


@pytest.fixture
def client(gateway: ConsentGateway) -> Iterator[TestClient]:
    with TestClient(gateway) as test_client:
        yield test_client


def cookie_names(response: Any) -> list[str]:
    return [h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")]


def test_tracker_is_held_back_and_banner_inserted_without_consent(client: TestClient) -> None:
    response = client.get("/", headers={"Accept-Encoding": "identity"})
    body = response.text
    assert ' src="https://www.googletagmanager.com' not in body
    assert 'data-cg-src="https://www.googletagmanager.com/gtag/js?id=G-TEST"' in body
    assert 'type="text/plain"' in body and 'data-category="analytics"' in body
    head = body.index("<head>") + len("<head>")
    assert body[head:].startswith("<script") and "cg-config" in body[head : head + 400]
    assert "/_consent/banner.js" in body
    # a page sent in one piece gets its new, exact length (never the site's stale one)
    assert response.headers["content-length"] == str(len(response.content))


def test_personalised_html_is_never_shared_cached(client: TestClient) -> None:
    response = client.get("/public")
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    cache_control = response.headers["cache-control"]
    assert "private" in cache_control and "public" not in cache_control and "s-maxage" not in cache_control
    assert "max-age=600" in cache_control
    assert client.get("/").headers["cache-control"] == "private"


def test_tracker_stays_after_consent(client: TestClient) -> None:
    client.post("/_consent/choices", json={"choices": {"analytics": True}}, headers=SAME_ORIGIN)
    body = client.get("/").text
    assert GTAG in body


def test_tracking_cookies_are_dropped_without_consent(client: TestClient) -> None:
    response = client.get("/")
    names = cookie_names(response)
    assert "_ga" not in names
    assert "session" in names  # unknown to the catalog: allowed by default, counted
    assert "cg_consent" not in names  # only /_consent sets the consent cookie
    assert metrics.value("dropped_cookies_total", vendor="google-analytics") == 1
    assert metrics.value("unknown_cookies_total", name="session") == 1


def test_tracking_cookies_pass_with_consent(client: TestClient) -> None:
    client.post("/_consent/choices", json={"choices": {"analytics": True}}, headers=SAME_ORIGIN)
    assert "_ga" in cookie_names(client.get("/"))


def test_unknown_cookies_can_be_blocked(config: Config) -> None:
    from dataclasses import replace

    strict = replace(config, gateway=replace(config.gateway, unknown_cookies="block"))
    with TestClient(ConsentGateway(starlette_site(), strict, secret_keys=TEST_SECRET_KEYS)) as client:
        assert "session" not in cookie_names(client.get("/"))


def test_json_passes_untouched(client: TestClient) -> None:
    response = client.get("/api")
    assert response.json() == {"ok": True}
    assert response.headers["content-length"] == str(len(response.content))
    assert "vary" not in response.headers


@pytest.mark.parametrize("path", ["/gzip", "/br", "/deflate"])
def test_compressed_html_is_decoded_and_rewritten(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in response.headers
    assert "data-cg-src=" in response.text and "cg-config" in response.text


def test_utf16_html_is_rewritten_in_utf16(client: TestClient) -> None:
    response = client.get("/utf16", headers={"Accept-Encoding": "identity"})
    assert response.content.startswith(PAGE.encode("utf-16")[:2])  # its BOM, in the same byte order
    text = response.content.decode("utf-16")
    assert "data-cg-src=" in text and "cg-config" in text
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == 0


def test_head_and_204(client: TestClient) -> None:
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert "private" in head.headers["cache-control"]
    assert client.get("/empty").status_code == 204


def test_csp_nonce_is_reused_for_the_inserted_tags(client: TestClient) -> None:
    body = client.get("/csp").text
    assert 'nonce="r4nd0m"' in body


def test_the_app_sees_the_decision(config: Config) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope[DECISION_SCOPE_KEY])
            await JSONResponse({})(scope, receive, send)

    TestClient(ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS)).get("/")  # no lifespan: a bare app
    assert seen[0].granted == {"necessary"}


def test_fastapi_app(config: Config) -> None:
    api = FastAPI()

    @api.get("/", response_class=FastAPIHTMLResponse)
    def home() -> str:
        return PAGE

    with TestClient(ConsentGateway(api, config, secret_keys=TEST_SECRET_KEYS)) as client:
        assert "data-cg-src=" in client.get("/").text


def test_html_streams_chunk_by_chunk(config: Config) -> None:
    """The first chunk reaches the server before the app has produced the second one."""
    gateway_holder: dict[str, ConsentGateway] = {}
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send(
            {"type": "http.response.body", "body": b"<html><head></head><body>first" + b"." * 2048, "more_body": True}
        )
        # The server has the first chunk already: streaming, not buffering (only the first 1 KiB is held, to
        # sniff the encoding as browsers do).
        assert any(b"first" in m.get("body", b"") for m in sent)
        await send({"type": "http.response.body", "body": b"<scr", "more_body": True})
        await send(
            {
                "type": "http.response.body",
                "body": b'ipt src="//connect.facebook.net/en_US/fbevents.js"></script>',
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": b"</body></html>", "more_body": False})

    gateway_holder["g"] = ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS)

    async def run() -> None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [],
            "query_string": b"",
            "client": ("127.0.0.1", 1),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gateway_holder["g"](scope, receive, send)

    asyncio.run(run())
    body = b"".join(m.get("body", b"") for m in sent)
    assert b'data-cg-src="//connect.facebook.net/en_US/fbevents.js"' in body
    assert b' src="//connect.facebook.net' not in body
    assert sent[-1]["more_body"] is False


def test_websocket_and_lifespan_pass_through(config: Config) -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            await send({"type": "websocket.close"})

    with TestClient(ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS)) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hi"
    assert events == ["lifespan.startup", "lifespan.shutdown"]


def test_advanced_consent_mode_lets_google_tags_load_before_consent(config: Config) -> None:
    from dataclasses import replace

    advanced = replace(config, banner=replace(config.banner, consent_mode="advanced"))
    with TestClient(ConsentGateway(starlette_site(), advanced, secret_keys=TEST_SECRET_KEYS)) as client:
        response = client.get("/")
        assert GTAG in response.text  # loads with every Consent Mode signal denied
        assert "_ga" not in cookie_names(response)  # but its cookies still wait for consent


def test_held_back_tags_are_counted_by_vendor_in_the_metrics(client: TestClient) -> None:
    client.get("/")
    client.get("/")
    assert metrics.value("held_back_tags_total", vendor="google-analytics") == 2
    assert 'consent_gateway_held_back_tags_total{vendor="google-analytics"} 2' in client.get("/_consent/metrics").text


def _served_in_chunks(config: Config, page: bytes, content_type: bytes, chunk: int) -> tuple[bytes, bytes]:
    """(Content-Type, body) of a page an app sends in chunks of ``chunk`` bytes."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        for start in range(0, len(page), chunk):
            await send({"type": "http.response.body", "body": page[start : start + chunk], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    gateway = ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS)

    async def run() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"",
                 "client": ("127.0.0.1", 1)}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await gateway(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    return dict(start["headers"])[b"content-type"], b"".join(m.get("body", b"") for m in sent)


# the <meta charset> sits near the end of the first KiB, after trackers whose held-back form is longer
_LATE_CHARSET_PAGE = (
    b"<!doctype html><html><head>"
    + b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-TEST"></script>' * 10
    + b"<title>" + b"t" * 60 + b"</title>"
)
_LATE_CHARSET_PAGE += (b" " * (990 - len(_LATE_CHARSET_PAGE))
                       + b'<meta charset="windows-1252"></head><body>caf\xe9</body>')


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1024, 1030, 4096])
def test_the_pages_meta_charset_is_stated_in_content_type_when_the_site_names_none(config: Config,
                                                                                    chunk: int) -> None:
    assert _LATE_CHARSET_PAGE.index(b"<meta charset") < 1024
    content_type, body = _served_in_chunks(config, _LATE_CHARSET_PAGE, b"text/html", chunk)
    # the held-back scripts and the banner push the <meta> out of the KiB a browser reads it in
    assert body.index(b"<meta charset") > 1024
    assert content_type == b"text/html; charset=windows-1252"
    # a charset the site states is left as it is, and a page with no <meta charset> gets none
    assert _served_in_chunks(config, _LATE_CHARSET_PAGE, b"text/html; charset=utf-8", chunk)[0] == (
        b"text/html; charset=utf-8")
    plain = _LATE_CHARSET_PAGE.replace(b'<meta charset="windows-1252">', b"<meta name=x>")
    assert _served_in_chunks(config, plain, b"text/html", chunk)[0] == b"text/html"
