"""The proxy's own HTTP/1.1 client (upstream_http.py) against scripted upstreams on loopback: keep-alive
reuse, a pooled connection the upstream closed, the framings of a body, 1xx answers, timeouts, the pool's
limit and backpressure. Served for real by uvicorn, read by httpx, as a visitor would."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent_gateway import metrics
from consent_gateway.proxy import UpstreamProxy
from tests.servers import WAIT_SECONDS, ServerThread

#: (connection number, request number on it, the request's bytes) -> the answer's bytes, or None to hang up
Script = Callable[[int, int, bytes], bytes | None]


class ScriptedUpstream:
    """A raw HTTP/1.1 server on loopback that answers as its script says, counting connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.connections += 1
                threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn, contextlib.suppress(OSError):
            for index in range(1, 1000):
                while b"\r\n\r\n" not in buffer:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    buffer += piece
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                answer = self.script(number, index, request)
                if answer is None:
                    return  # hang up without a word
                conn.sendall(answer)
                if b"\r\nconnection: close\r\n" in answer.lower():
                    return

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def proxied(script: Script, **options: Any) -> Iterator[tuple[ScriptedUpstream, str]]:
    upstream = ScriptedUpstream(script)
    try:
        with ServerThread(UpstreamProxy(upstream.url, **options)) as proxy:
            yield upstream, proxy.url
    finally:
        upstream.close()


def _ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_sequential_requests_reuse_one_upstream_connection() -> None:
    with proxied(lambda conn, index, request: _ok(b"answer %d" % index)) as (upstream, url):
        with httpx.Client(timeout=WAIT_SECONDS) as client:
            bodies = [client.get(url + f"/{n}").content for n in range(5)]
    assert bodies == [b"answer %d" % n for n in range(1, 6)]
    assert upstream.connections == 1


def test_a_pooled_connection_the_upstream_closed_is_retried_on_a_new_one() -> None:
    # The first connection answers once, then hangs up on the next request (an idle timeout meeting it)
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        return None if conn == 1 and index == 2 else _ok(b"conn %d" % conn)

    with proxied(script) as (upstream, url):
        first = httpx.get(url + "/a", timeout=WAIT_SECONDS)
        second = httpx.get(url + "/b", timeout=WAIT_SECONDS)
    assert (first.status_code, first.content) == (200, b"conn 1")
    assert (second.status_code, second.content) == (200, b"conn 2")
    assert upstream.connections == 2


def test_a_post_on_a_pooled_connection_the_upstream_closed_is_not_sent_again() -> None:
    # Not idempotent: the upstream may have acted on it before hanging up, so the visitor gets a clean 502
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        return None if index == 2 else _ok()

    with proxied(script) as (upstream, url):
        assert httpx.get(url + "/a", timeout=WAIT_SECONDS).status_code == 200
        posted = httpx.post(url + "/order", content=b"buy=1", timeout=WAIT_SECONDS)
    assert posted.status_code == 502
    assert posted.json()["error"]["code"] == "upstream_unavailable"
    assert sum(request.startswith(b"POST") for request in upstream.requests) == 1


def test_chunked_body_arrives_whole() -> None:
    pieces = [b"<p>one</p>", b"x" * 70_000, b"<p>three</p>"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n"
    with proxied(lambda conn, index, request: head + chunked) as (upstream, url):
        with httpx.Client(timeout=WAIT_SECONDS) as client:
            responses = [client.get(url + "/") for _ in range(2)]
    assert [response.content for response in responses] == [b"".join(pieces)] * 2
    assert upstream.connections == 1  # the connection was reusable after the last chunk


def test_body_without_a_length_ends_with_the_upstream_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n"

    def script(conn: int, index: int, request: bytes) -> bytes | None:
        return head + b"until the end" if index == 1 else None

    with proxied(script) as (upstream, url):
        first = httpx.get(url + "/", timeout=WAIT_SECONDS)
        second = httpx.get(url + "/", timeout=WAIT_SECONDS)
    assert (first.status_code, first.content) == (200, b"until the end")
    assert (second.status_code, second.content) == (200, b"until the end")
    assert upstream.connections == 2  # a close-delimited answer's connection is not used again


def test_interim_answers_are_not_passed_on() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </tracker.js>; rel=preload\r\n\r\n"
    with proxied(lambda conn, index, request: early + _ok(b"final", b"x-final: yes\r\n")) as (_, url):
        response = httpx.get(url + "/", timeout=WAIT_SECONDS)
    assert (response.status_code, response.content) == (200, b"final")
    assert response.headers["x-final"] == "yes"
    assert "link" not in response.headers


def test_head_answer_leaves_the_pool_working() -> None:
    # A HEAD answer announces a length it does not send: the next request must not read it as a body
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        answer = _ok(b"body")
        return answer[: -len(b"body")] if request.startswith(b"HEAD") else answer

    with proxied(script) as (_, url):
        with httpx.Client(timeout=WAIT_SECONDS) as client:
            head = client.head(url + "/")
            get = client.get(url + "/")
    assert head.status_code == 200 and head.headers["content-length"] == "4"
    assert (get.status_code, get.content) == (200, b"body")


def test_upstream_stalling_mid_body_breaks_off_the_answer_at_the_read_timeout() -> None:
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 100\r\n\r\n<p>start"

    before = metrics.value("upstream_errors_total", kind="timeout")
    with proxied(script, read_timeout=0.3) as (_, url):
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url + "/", timeout=WAIT_SECONDS)
    assert time.monotonic() - started < WAIT_SECONDS / 2
    assert metrics.value("upstream_errors_total", kind="timeout") == before + 1


def test_upstream_silent_before_its_headers_answers_504() -> None:
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        time.sleep(1.0)
        return _ok()

    with proxied(script, read_timeout=0.3) as (_, url):
        response = httpx.get(url + "/", timeout=WAIT_SECONDS)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_malformed_answer_is_a_clean_502() -> None:
    with proxied(lambda conn, index, request: b"HTTP/1.1 two hundred\r\n\r\n") as (_, url):
        response = httpx.get(url + "/", timeout=WAIT_SECONDS)
    assert response.status_code == 502


def test_answer_with_oversized_headers_is_a_clean_502() -> None:
    from consent_gateway.upstream_http import HEADERS_MAX_BYTES

    huge = b"".join(b"x-filler-%d: %s\r\n" % (n, b"v" * 1000) for n in range(HEADERS_MAX_BYTES // 1000 + 1))
    with proxied(lambda conn, index, request: _ok(b"hello", huge if conn == 1 else b"")) as (upstream, url):
        with httpx.Client(timeout=WAIT_SECONDS) as client:
            refused = client.get(url + "/")
            fine = client.get(url + "/")
    assert refused.status_code == 502
    assert (fine.status_code, fine.content) == (200, b"hello")


def test_requests_beyond_the_pool_wait_for_a_connection() -> None:
    def script(conn: int, index: int, request: bytes) -> bytes | None:
        time.sleep(0.1)
        return _ok(b"served")

    async def visit(url: str) -> list[bytes]:
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as client:
            responses = await asyncio.gather(*(client.get(url + f"/{n}") for n in range(4)))
        return [response.content for response in responses]

    with proxied(script, max_connections=1) as (upstream, url):
        assert asyncio.run(visit(url)) == [b"served"] * 4
    assert upstream.connections == 1


def test_header_that_would_split_the_request_is_refused() -> None:
    # uvicorn never lets a line break through; another ASGI server might: the proxy must not forward it
    asked: list[bytes] = []
    with proxied(lambda conn, index, request: asked.append(request) or _ok()) as (upstream, _):
        proxy = UpstreamProxy(upstream.url)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": [(b"host", b"shop.example"), (b"x-note", b"a\r\nx-injected: yes")],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def run() -> None:
            await proxy(scope, receive, send)
            await proxy.aclose()

        asyncio.run(run())
    assert sent[0]["status"] == 400
    assert asked == []


def test_slow_visitor_pauses_the_upstream_instead_of_filling_memory() -> None:
    produced = 0
    total = 64 * 1024 * 1024

    async def site(scope: Any, receive: Any, send: Any) -> None:
        nonlocal produced
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x")]})
        piece = b"z" * 65536
        while produced < total:
            produced += len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with ServerThread(site) as upstream, ServerThread(UpstreamProxy(upstream.url)) as proxy:
        with httpx.stream("GET", proxy.url + "/", timeout=WAIT_SECONDS) as response:
            chunks = response.iter_raw()
            received = len(next(chunks))
            time.sleep(1.0)  # the visitor reads nothing more for a while
            stalled_at = produced
            received += sum(len(chunk) for chunk in chunks)
    # socket buffers hold a few MB; a proxy reading on regardless would have taken all 64
    assert stalled_at < total // 2
    assert received == total


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_upstream_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.responses import PlainTextResponse

    from tests.test_forwarded import self_signed

    async def site(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await PlainTextResponse("over tls")(scope, receive, send)

    cert, key = self_signed(tmp_path)
    with ServerThread(site, ssl_certfile=str(cert), ssl_keyfile=str(key)) as upstream:
        url = f"https://127.0.0.1:{upstream.port}"
        with ServerThread(UpstreamProxy(url)) as untrusting:
            refused = httpx.get(untrusting.url + "/", timeout=WAIT_SECONDS)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system's trust store, as the proxy reads it
        with ServerThread(UpstreamProxy(url)) as trusting:
            with httpx.Client(timeout=WAIT_SECONDS) as client:
                answers = [client.get(trusting.url + "/") for _ in range(2)]
    assert refused.status_code == 502
    assert [(answer.status_code, answer.text) for answer in answers] == [(200, "over tls")] * 2
