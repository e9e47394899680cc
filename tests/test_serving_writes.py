"""What `consent-gateway proxy` serves with (serving.http_protocol): a response's head goes out with its first
body bytes in one write, yet never waits for a body that comes later; raw-socket clients on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from consent_gateway.serving import http_protocol
from tests.servers import WAIT_SECONDS, ServerThread

PAGE = b"<p>" + b"x" * 60_000 + b"</p>"


class Site:
    def __init__(self) -> None:
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/late":  # a stream whose first bytes come later than its head
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"late body"})
            return
        headers = [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})


@pytest.fixture
def served() -> Iterator[tuple[Site, ServerThread]]:
    site = Site()
    with ServerThread(site, http=http_protocol()) as server:
        yield site, server
    site.release.set()


def _read_until(sock: socket.socket, marker: bytes, received: bytes = b"") -> bytes:
    while marker not in received:
        piece = sock.recv(65536)
        assert piece, received[:200]
        received += piece
    return received


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    received = _read_until(sock, b"\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
    )
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece
        body += piece
    return head, body


def test_pages_arrive_whole_on_a_kept_alive_connection(served: tuple[Site, ServerThread]) -> None:
    _, server = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        for _ in range(3):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert body == PAGE


def test_a_head_whose_body_comes_later_is_sent_at_once(served: tuple[Site, ServerThread]) -> None:
    site, server = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"GET /late HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        head = _read_until(sock, b"\r\n\r\n")  # would time out if the head waited for the body
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert not site.release.is_set()
        site.release.set()
        assert b"late body" in _read_until(sock, b"late body", head)


def test_head_request_gets_its_head(served: tuple[Site, ServerThread]) -> None:
    _, server = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        head = _read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert f"content-length: {len(PAGE)}".encode() in head.lower()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")  # the connection goes on
        assert _read_response(sock)[1] == PAGE
