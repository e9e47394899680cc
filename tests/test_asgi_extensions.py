"""ASGI extensions through the gateway (issue 10, item 7): a page sent as a file (`pathsend`,
`zerocopysend`) is rewritten like any body; other files and `trailers` pass through untouched."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from consent_gateway._types import Message, Receive, Scope, Send
from consent_gateway.config import Config
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS

PAGE = b'<html><head></head><body><script src="https://www.googletagmanager.com/gtag/js?id=G-1"></script></body></html>'


def serve(gateway: ConsentGateway) -> list[Message]:
    """One GET through the gateway as a server offering the extensions would run it; the messages it sends."""
    sent: list[Message] = []
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80), "headers": [(b"host", b"shop.example"), (b"accept", b"text/html")],
        "extensions": {"http.response.pathsend": {}, "http.response.zerocopysend": {}, "http.response.trailers": {},
                       "http.response.early_hint": {}},
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(gateway(scope, receive, send))
    return sent


def body_of(sent: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def file_app(path: Path, content_type: bytes, how: str) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(path.stat().st_size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if how == "pathsend":
            await send({"type": "http.response.pathsend", "path": str(path)})
        else:
            fd = os.open(path, os.O_RDONLY)
            try:
                await send({"type": "http.response.zerocopysend", "file": fd, "offset": 0, "more_body": False})
            finally:
                os.close(fd)

    return app


def test_an_html_page_sent_with_pathsend_is_rewritten(config: Config, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_bytes(PAGE)
    for how in ("pathsend", "zerocopysend"):
        app = file_app(page, b"text/html; charset=utf-8", how)
        sent = serve(ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS))  # type: ignore[arg-type]
        assert sent[0]["type"] == "http.response.start", how  # the server sees the start first
        assert all(m["type"] != f"http.response.{how}" for m in sent), how
        body = body_of(sent)
        assert b"banner.js" in body and b'<script src="https://www.googletagmanager.com' not in body, how
        assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body"), how


def test_other_files_and_trailers_pass_through_untouched(config: Config, tmp_path: Path) -> None:
    image = tmp_path / "logo.png"
    image.write_bytes(b"\x89PNG...")
    sent = serve(ConsentGateway(file_app(image, b"image/png", "pathsend"), config, secret_keys=TEST_SECRET_KEYS))  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    assert sent[1]["path"] == str(image)

    async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": PAGE})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False})

    sent = serve(ConsentGateway(with_trailers, config, secret_keys=TEST_SECRET_KEYS))
    assert sent[0]["type"] == "http.response.start" and sent[0]["trailers"] is True
    assert sent[-1] == {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False}
    assert b"banner.js" in body_of(sent)


def test_early_hints_lose_the_links_to_trackers_the_page_headers_would_lose(config: Config) -> None:
    """An app sends 103 Early Hints (the ASGI extension) before its page: a browser preloads and connects on
    them before any page, so each goes out less what the visitor's decision holds back, or not at all."""
    tracker = "<https://www.googletagmanager.com/gtag/js?id=G-HINT>; rel=preload; as=script"
    pixel = '<https://connect.facebook.net>; rel="preconnect dns-prefetch"'
    own = "</app.css>; rel=preload; as=style"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.early_hint", "links": [tracker.encode(), f"{pixel}, {own}".encode()]})
        await send({"type": "http.response.early_hint", "links": [tracker.encode()]})  # nothing left: no hint
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE, "more_body": False})

    sent = serve(ConsentGateway(app, config, secret_keys=TEST_SECRET_KEYS))  # type: ignore[arg-type]
    hints = [m for m in sent if m["type"] == "http.response.early_hint"]
    assert [list(m["links"]) for m in hints] == [[own.encode()]]
    assert sent[0] is hints[0] and sent[1]["type"] == "http.response.start"
