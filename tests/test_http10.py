"""HTTP/1.0 clients (issue 10, item 3): a body without a length goes close-delimited — streamed as it comes,
never gathered, never chunked — through what `consent-gateway proxy` serves, with a real origin over
loopback and raw-socket clients."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from consent_gateway._types import Receive, Scope, Send
from consent_gateway.cli import proxy_app
from consent_gateway.config import Config
from consent_gateway.limits import RequestLimits
from consent_gateway.serving import Http10ClosingProtocol, http_protocol
from tests.servers import WAIT_SECONDS, ServerThread

FIRST = b"<html><head><title>t</title></head><body><p>first part</p>" + b" " * 4096
SECOND = b'<p>second part</p><script src="https://www.googletagmanager.com/gtm.js"></script></body></html>'


class Origin:
    def __init__(self) -> None:
        self.release = threading.Event()


def origin_app(origin: Origin) -> Starlette:
    async def page(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield FIRST
            for _ in range(int(WAIT_SECONDS * 20)):
                if origin.release.is_set():
                    break
                await asyncio.sleep(0.05)
            yield SECOND

        return StreamingResponse(parts(), media_type="text/html")

    return Starlette(routes=[Route("/", page), Route("/text", lambda request: PlainTextResponse("plain"))])


@pytest.fixture
def served(config: Config) -> Iterator[tuple[Origin, ServerThread]]:
    origin = Origin()
    with ServerThread(origin_app(origin)) as site:
        with ServerThread(proxy_app(site.url, config), http=http_protocol()) as gateway:
            yield origin, gateway
    origin.release.set()


def _head(sock: socket.socket) -> tuple[bytes, bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        piece = sock.recv(65536)
        if not piece:
            break
        received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    return head.lower(), body


def _until(sock: socket.socket, body: bytes, needle: bytes) -> bytes:
    while needle not in body:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return body


def test_the_proxy_command_serves_http_1_0_with_the_closing_protocol() -> None:
    assert http_protocol() is Http10ClosingProtocol  # httptools is installed with the `fast` extra


def test_an_http_1_0_client_gets_the_page_close_delimited_and_streamed(served: tuple[Origin, ServerThread]) -> None:
    origin, gateway = served
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
        head, body = _head(sock)
        assert head.startswith(b"http/1.1 200")
        assert b"transfer-encoding" not in head and b"content-length" not in head
        assert b"connection: close" in head
        # the first part, rewritten, arrives while the origin still holds the second: nothing is gathered
        body = _until(sock, body, b"first part")
        assert b"banner.js" in body and b"second part" not in body
        origin.release.set()
        while piece := sock.recv(65536):  # the end of the body is the end of the connection
            body += piece
    assert body.rstrip().endswith(b"</body></html>") and b"second part" in body
    assert b'<script src="https://www.googletagmanager.com' not in body  # rewritten to the end
    assert b"0\r\n\r\n" not in body


def test_http_1_1_clients_still_get_chunks_and_keep_alive(served: tuple[Origin, ServerThread]) -> None:
    origin, gateway = served
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
        head, body = _head(sock)
        assert b"transfer-encoding: chunked" in head
        origin.release.set()
        assert _until(sock, body, b"0\r\n\r\n").endswith(b"0\r\n\r\n")
        sock.sendall(b"GET /text HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the same connection, still open
        head, _ = _head(sock)
        assert head.startswith(b"http/1.1 200")


def test_an_http_1_0_answer_with_a_length_keeps_it(served: tuple[Origin, ServerThread]) -> None:
    with socket.create_connection(("127.0.0.1", served[1].port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"GET /text HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        head, body = _head(sock)
        body = _until(sock, body, b"plain")
    assert b"content-length: 5" in head and body == b"plain"


def test_an_app_that_asks_for_chunks_still_closes_for_http_1_0() -> None:
    async def chunky(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"transfer-encoding", b"chunked")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    with ServerThread(RequestLimits(chunky), lifespan="off", http=http_protocol()) as server, socket.create_connection(
        ("127.0.0.1", server.port), timeout=WAIT_SECONDS
    ) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        head, body = _head(sock)
        started = time.monotonic()
        while piece := sock.recv(65536):
            body += piece
    assert b"transfer-encoding" not in head and b"content-length" not in head
    assert body == b"x" * 3000 + b"end"
    assert time.monotonic() - started < WAIT_SECONDS  # closed at the end, not at a timeout
