"""Proxy framing and limits (issue 10, item 5): what `consent-gateway proxy` serves, over loopback, with a
scriptable origin and raw-socket clients."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway.cli import proxy_app
from consent_gateway.config import Config
from consent_gateway.limits import RateLimiter
from tests.servers import ServerThread

PAGE = b"<html><head></head><body><p>hello</p></body></html>"


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body)})


def origin_app() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(PAGE)), Route("/echo", echo, methods=["POST"])])


def limited(config: Config, **proxy: object) -> Config:
    return replace(config, proxy=replace(config.proxy, **proxy))


@pytest.fixture
def gateway(config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerThread]:
    config = limited(config, body_idle_timeout_seconds=0.5, request_timeout_seconds=1.5)
    with ServerThread(origin_app()) as origin, ServerThread(proxy_app(origin.url, config)) as server:
        yield server


def raw_exchange(port: int, request: bytes, *, trickle: list[bytes] | None = None, pause: float = 0.0) -> bytes:
    """Sends `request` (then each `trickle` piece after `pause`) and reads until the server closes or 5 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        for piece in trickle or ():
            time.sleep(pause)
            with contextlib.suppress(OSError):
                sock.sendall(piece)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and _complete(received):
                    break
        return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return body.endswith(b"0\r\n\r\n")


def status_and_code(response: bytes) -> tuple[int, str | None]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return status, None


def test_a_normal_page_still_passes(gateway: ServerThread) -> None:
    response = httpx.get(gateway.url + "/")
    assert response.status_code == 200 and b"<p>hello</p>" in response.content


def test_two_host_headers_are_refused(gateway: ServerThread) -> None:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
    assert status_and_code(raw_exchange(gateway.port, request)) == (400, "duplicate_host")


def test_two_transfer_encoding_lines_are_refused(gateway: ServerThread) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    status, code = status_and_code(raw_exchange(gateway.port, request))
    assert status == 400  # by the HTTP parser itself or by the gateway, never forwarded
    assert code in (None, "duplicate_transfer_encoding")


def test_two_megabytes_of_headers_are_refused_with_431(gateway: ServerThread) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 8000) for i in range(256))
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + filler + b"\r\n"
    status, code = status_and_code(raw_exchange(gateway.port, request))
    assert status in (400, 431), status
    assert code in (None, "too_many_headers", "headers_too_large")
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert status_and_code(raw_exchange(gateway.port, big)) == (431, "headers_too_large")
    many = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-N%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    assert status_and_code(raw_exchange(gateway.port, many)) == (431, "too_many_headers")


def test_a_trickled_body_is_answered_408_not_waited_on_forever(gateway: ServerThread) -> None:
    before = metrics.value("requests_refused_total", reason="request_timeout")
    started = time.monotonic()
    request = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789"
    response = raw_exchange(gateway.port, request)  # then nothing: idle past 0.5 s
    assert status_and_code(response) == (408, "request_timeout")
    assert time.monotonic() - started < 4
    assert metrics.value("requests_refused_total", reason="request_timeout") == before + 1


def test_a_body_dripping_under_the_idle_limit_still_meets_the_total_limit(gateway: ServerThread) -> None:
    started = time.monotonic()
    request = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0"
    response = raw_exchange(gateway.port, request, trickle=[b"1"] * 30, pause=0.2)  # a byte every 0.2 s
    assert status_and_code(response) == (408, "request_timeout")
    assert time.monotonic() - started < 6.5


def test_a_body_arriving_in_time_reaches_the_site(gateway: ServerThread) -> None:
    request = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n01234"
    response = raw_exchange(gateway.port, request, trickle=[b"56789"], pause=0.2)
    assert response.startswith(b"HTTP/1.1 200") and b'{"length":10}' in response


class ResettingOrigin:
    """A raw origin that starts an HTML page, chunked, and resets the connection in the middle of it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"20\r\n<html><head></head><body><p>Pri\r\n"
                )
                time.sleep(0.05)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()  # RST, mid-chunk

    def close(self) -> None:
        self.sock.close()


def test_an_upstream_reset_mid_page_aborts_the_visitors_connection(config: Config) -> None:
    origin = ResettingOrigin()
    try:
        with ServerThread(proxy_app(origin.url, config)) as server:
            request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n"
            response = raw_exchange(server.port, request)
    finally:
        origin.close()
    assert response.startswith(b"HTTP/1.1 200")
    assert not response.endswith(b"0\r\n\r\n")  # no well-formed end after the truncated body
    with pytest.raises(httpx.RemoteProtocolError):
        origin = ResettingOrigin()
        try:
            with ServerThread(proxy_app(origin.url, config)) as server:
                httpx.get(server.url + "/", headers={"Accept": "text/html"})
        finally:
            origin.close()


# -- the consent POST rate


def test_consent_posts_past_the_rate_get_429_and_a_retry_after(config: Config) -> None:
    config = replace(config, gateway=replace(config.gateway, consent_rate_per_minute=6, consent_rate_burst=3))
    with ServerThread(origin_app()) as origin, ServerThread(proxy_app(origin.url, config)) as server:
        headers = {"Sec-Fetch-Site": "same-origin"}
        with httpx.Client(base_url=server.url, headers=headers) as client:
            answers = [client.post("/_consent/choices", json={"action": "reject_all"}) for _ in range(4)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert answers[-1].json()["error"]["code"] == "too_many_requests"
            assert 1 <= int(answers[-1].headers["retry-after"]) <= 10
            # withdrawing is never refused for the rate
            assert client.delete("/_consent/choices").status_code == 200


def test_each_instance_counts_the_consent_rate_for_itself(config: Config, tmp_path: Path) -> None:
    """What docs/deployment.md states: two instances on one log behind a round-robin balancer let one
    address through twice the burst (the buckets are in memory, no store round trip is spent on them)."""
    config = replace(config, gateway=replace(config.gateway, consent_rate_per_minute=6, consent_rate_burst=3))
    second = replace(config, gateway=replace(config.gateway, instance_id="test-2"),
                     store=replace(config.store, spool_path=str(tmp_path / "spool-2")))
    with ServerThread(origin_app()) as origin, ServerThread(proxy_app(origin.url, config)) as one, ServerThread(
        proxy_app(origin.url, second)
    ) as two:
        headers = {"Sec-Fetch-Site": "same-origin"}
        statuses = []
        for index in range(8):  # round robin
            url = (one if index % 2 == 0 else two).url
            statuses.append(httpx.post(url + "/_consent/choices", json={"action": "reject_all"}, headers=headers))
        assert [s.status_code for s in statuses] == [200] * 6 + [429] * 2


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.retry_after("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.retry_after("a") == pytest.approx(1.0)
    assert limiter.retry_after("b") == 0.0  # per address
    now[0] += 1.0
    assert limiter.retry_after("a") == 0.0
