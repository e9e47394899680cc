"""The reverse proxy against real upstream servers on loopback, served for real by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from consent_gateway import metrics
from consent_gateway.proxy import UpstreamProxy
from tests.servers import WAIT_SECONDS, ServerThread


# -- the upstream site -------------------------------------------------------------------------------
class Upstream:
    """Events the upstream's handlers and the tests share across threads."""

    def __init__(self) -> None:
        self.release_stream = threading.Event()
        self.first_upload_chunk = threading.Event()
        self.sse_closed = threading.Event()


async def _wait_thread_event(event: threading.Event, seconds: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while not event.is_set():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def build_upstream(shared: Upstream) -> Starlette:
    async def echo(request: Request) -> Response:
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "query": request.scope["query_string"].decode("latin-1"),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
                "body": (await request.body()).decode("latin-1"),
            }
        )

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk;"
            await _wait_thread_event(shared.release_stream)
            yield b"second chunk"

        return StreamingResponse(chunks(), media_type="text/html")

    async def upload(request: Request) -> Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            if chunk:
                shared.first_upload_chunk.set()
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()})

    async def cookies(request: Request) -> Response:
        response = PlainTextResponse("ok")
        for name in ("_ga", "session", "pref"):
            response.set_cookie(name, f"{name}-value", path="/")
        return response

    async def slow(request: Request) -> Response:
        await asyncio.sleep(4)
        return PlainTextResponse("too late")

    async def page(request: Request) -> Response:
        return Response(b"x" * 1234, media_type="text/html", headers={"etag": '"v1"'})

    async def no_content(request: Request) -> Response:
        return Response(status_code=204, headers={"x-marker": "204"})

    async def not_modified(request: Request) -> Response:
        return Response(status_code=304, headers={"etag": '"v1"'})

    async def redirect(request: Request) -> Response:
        return Response(status_code=302, headers={"location": "/elsewhere"})

    async def gzipped(request: Request) -> Response:
        return Response(
            gzip.compress(b"<p>compressed</p>" * 50), media_type="text/html", headers={"content-encoding": "gzip"}
        )

    async def sse(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"data: tick\n\n"
                    await asyncio.sleep(0.05)
            finally:
                shared.sse_closed.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def ws_echo(websocket: WebSocket) -> None:
        protocols = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=protocols[0] if protocols else None)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "bye":
                await websocket.close(code=4001)
                return
            if message.get("text") is not None:
                await websocket.send_text("echo:" + message["text"])
            else:
                await websocket.send_bytes(b"echo:" + message["bytes"])

    return Starlette(
        routes=[
            Route("/stream", stream),
            Route("/upload", upload, methods=["POST", "PUT"]),
            Route("/cookies", cookies),
            Route("/slow", slow),
            Route("/page", page, methods=["GET", "HEAD"]),
            Route("/no-content", no_content),
            Route("/not-modified", not_modified),
            Route("/redirect", redirect),
            Route("/gzipped", gzipped),
            Route("/sse", sse),
            WebSocketRoute("/ws", ws_echo),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )


async def hop_by_hop_upstream(scope: Any, receive: Any, send: Any) -> None:
    """An upstream that sends hop-by-hop headers of its own, which must not reach the visitor."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"connection", b"x-upstream-hop"),
                (b"x-upstream-hop", b"secret"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"x-kept", b"yes"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def shared() -> Upstream:
    return Upstream()


@pytest.fixture(scope="module")
def upstream(shared: Upstream) -> Iterator[ServerThread]:
    with ServerThread(build_upstream(shared)) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(upstream: ServerThread) -> Iterator[ServerThread]:
    with ServerThread(UpstreamProxy(upstream.url, read_timeout=0.5)) as server:
        yield server


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=WAIT_SECONDS) as http:
        yield http


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _header_names(echoed: dict[str, Any]) -> list[str]:
    return [name for name, _ in echoed["headers"]]


def _header(echoed: dict[str, Any], name: str) -> str | None:
    values = [value for key, value in echoed["headers"] if key == name]
    return ", ".join(values) if values else None


# -- streaming ---------------------------------------------------------------------------------------
def test_response_streams_first_chunk_before_upstream_finishes(client: httpx.Client, shared: Upstream) -> None:
    shared.release_stream.clear()
    with client.stream("GET", "/stream") as response:
        chunks = response.iter_raw()
        first = next(chunks)
        # The upstream is still waiting: a buffering proxy could not have sent anything yet.
        assert not shared.release_stream.is_set()
        shared.release_stream.set()
        rest = b"".join(chunks)
    assert first + rest == b"first chunk;second chunk"
    assert first.startswith(b"first chunk;")


def test_request_body_streams_to_upstream_before_upload_ends(client: httpx.Client, shared: Upstream) -> None:
    shared.first_upload_chunk.clear()
    piece = bytes(range(256)) * 256  # 64 KiB
    expected = hashlib.sha256()
    seen_before_end: list[bool] = []

    def body() -> Iterator[bytes]:
        for index in range(64):  # 4 MiB
            yield piece
            expected.update(piece)
            if index == 0:
                # Hold the rest back until the upstream has the first part: a buffering proxy never would.
                seen_before_end.append(shared.first_upload_chunk.wait(WAIT_SECONDS))

    response = client.post("/upload", content=body())
    assert response.status_code == 200
    assert seen_before_end == [True]
    assert response.json() == {"size": 64 * len(piece), "sha256": expected.hexdigest()}


def test_upload_with_content_length_arrives_whole(client: httpx.Client) -> None:
    payload = b"a=1&b=" + b"z" * 300_000
    response = client.put("/upload", content=payload)
    assert response.json() == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_endless_stream_stops_upstream_when_visitor_leaves(client: httpx.Client, shared: Upstream) -> None:
    shared.sse_closed.clear()
    with client.stream("GET", "/sse") as response:
        assert next(response.iter_raw()).startswith(b"data: tick")
    assert shared.sse_closed.wait(WAIT_SECONDS)


def test_head_of_an_endless_stream_through_the_gateway_answers_at_once_and_stops_it(
    upstream: ServerThread, shared: Upstream, config: Any
) -> None:
    # HEAD is asked of the site as a GET (so a page's headers are a GET's): a stream that never ends must not
    # hold the HEAD answer, nor keep streaming to nobody
    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import TEST_SECRET_KEYS

    shared.sse_closed.clear()
    app = ConsentGateway(UpstreamProxy(upstream.url), config, secret_keys=TEST_SECRET_KEYS)
    with ServerThread(app) as gateway:
        response = httpx.head(gateway.url + "/sse", timeout=WAIT_SECONDS)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-type"].startswith("text/event-stream")
        assert shared.sse_closed.wait(WAIT_SECONDS)


def _sized_upstream(pieces: list[bytes], gate: threading.Event | None = None) -> Any:
    """An upstream that declares its body's length and sends it in pieces, pausing between them (the way a
    page comes off a slower network); with a gate, it waits for the gate before its last piece."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        length = str(sum(map(len, pieces))).encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, piece in enumerate(pieces):
            if index == len(pieces) - 1 and gate is not None:
                await _wait_thread_event(gate)
            await send({"type": "http.response.body", "body": piece, "more_body": index < len(pieces) - 1})
            await asyncio.sleep(0.05)

    return app


def test_page_of_known_length_arriving_in_pieces_keeps_its_length_through_the_gateway(config: Any) -> None:
    # Passed on in one piece, the page keeps a Content-Length (no chunked framing) and is rewritten whole
    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import TEST_SECRET_KEYS

    page = TRACKED_PAGE.encode() + b"<p>filler</p>" * 2000
    pieces = [page[:1000], page[1000:9000], page[9000:]]
    with ServerThread(_sized_upstream(pieces)) as site:
        app = ConsentGateway(UpstreamProxy(site.url), config, secret_keys=TEST_SECRET_KEYS)
        with ServerThread(app) as gateway:
            response = httpx.get(gateway.url + "/", headers={"Accept-Encoding": "identity"}, timeout=WAIT_SECONDS)
    assert response.status_code == 200
    assert "transfer-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert 'data-cg-src="https://www.googletagmanager.com/gtag/js?id=G-E2E"' in response.text
    assert response.text.endswith("<p>filler</p>" * 2000)


def test_large_body_of_known_length_streams_before_the_upstream_finishes() -> None:
    # Past WHOLE_BODY_MAX_BYTES nothing is gathered: the visitor reads the start while the upstream waits
    from consent_gateway.proxy import WHOLE_BODY_MAX_BYTES

    gate = threading.Event()
    first = b"a" * (WHOLE_BODY_MAX_BYTES + 1)
    with ServerThread(_sized_upstream([first, b"end"], gate)) as site, ServerThread(UpstreamProxy(site.url)) as proxy:
        with httpx.stream("GET", proxy.url + "/", timeout=WAIT_SECONDS) as response:
            assert response.headers["content-length"] == str(len(first) + 3)
            received = b""
            chunks = response.iter_raw()
            while len(received) < len(first):
                received += next(chunks)
            assert not gate.is_set()  # the upstream still holds its last piece back
            gate.set()
            received += b"".join(chunks)
    assert received == first + b"end"


# -- headers -----------------------------------------------------------------------------------------
def test_hop_by_hop_request_headers_are_stripped(client: httpx.Client) -> None:
    echoed = client.get(
        "/echo",
        headers={
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "do not forward",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "Upgrade": "h2c",
            "X-End-To-End": "kept",
        },
    ).json()
    names = _header_names(echoed)
    for hop in ("x-private-hop", "keep-alive", "te", "trailer", "proxy-authorization", "upgrade"):
        assert hop not in names
    assert _header(echoed, "x-end-to-end") == "kept"


def test_hop_by_hop_response_headers_are_stripped() -> None:
    with ServerThread(hop_by_hop_upstream) as site, ServerThread(UpstreamProxy(site.url)) as proxy:
        response = httpx.get(proxy.url + "/")
    assert response.text == "ok"
    assert response.headers["x-kept"] == "yes"
    for hop in ("x-upstream-hop", "keep-alive", "proxy-authenticate"):
        assert hop not in response.headers
    assert "x-upstream-hop" not in response.headers.get("connection", "")


def _raw_request(port: int, request: bytes) -> dict[str, Any]:
    """The upstream's echo of a request sent byte for byte (an HTTP library would add headers of its own)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(request)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return dict(json.loads(body))


def test_proxy_adds_no_client_headers_of_its_own(proxy: ServerThread) -> None:
    # A visitor that sends no Accept, Accept-Encoding, User-Agent or Content-Type: the upstream sees none
    get = _raw_request(proxy.port, b"GET /echo HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
    post = _raw_request(
        proxy.port,
        b"POST /echo HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    )
    assert post["body"] == "body"
    for echoed in (get, post):
        names = _header_names(echoed)
        for added in ("accept", "accept-encoding", "user-agent", "content-type"):
            assert added not in names


def test_forwarded_headers_name_the_visitor_and_original_host(client: httpx.Client, upstream: ServerThread) -> None:
    echoed = client.get(
        "/echo",
        headers={"Host": "shop.example", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil"},
    ).json()
    assert _header(echoed, "x-forwarded-for") == "203.0.113.9, 127.0.0.1"
    assert _header(echoed, "x-forwarded-proto") == "http"
    assert _header(echoed, "x-forwarded-host") == "shop.example"
    # By default the upstream sees its own name as Host.
    assert _header(echoed, "host") == f"127.0.0.1:{upstream.port}"


def test_preserve_host_forwards_the_visitors_host(upstream: ServerThread) -> None:
    with ServerThread(UpstreamProxy(upstream.url, preserve_host=True)) as proxy:
        echoed = httpx.get(proxy.url + "/echo", headers={"Host": "shop.example"}).json()
    assert _header(echoed, "host") == "shop.example"


def test_path_query_and_body_reach_upstream_unchanged(client: httpx.Client) -> None:
    echoed = client.post("/a%2Fb/caf%C3%A9?q=a%20b&x=1&x=2", content=b"payload").json()
    assert echoed["method"] == "POST"
    assert echoed["raw_path"] == "/a%2Fb/caf%C3%A9"
    assert echoed["query"] == "q=a%20b&x=1&x=2"
    assert echoed["body"] == "payload"


def test_upstream_path_prefix_is_kept(upstream: ServerThread) -> None:
    with ServerThread(UpstreamProxy(upstream.url + "/site/")) as proxy:
        echoed = httpx.get(proxy.url + "/page?x=1").json()
    assert echoed["raw_path"] == "/site/page"


def test_every_set_cookie_header_survives(client: httpx.Client) -> None:
    response = client.get("/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert [c.split("=")[0] for c in cookies] == ["_ga", "session", "pref"]


def test_response_carries_one_date_and_server_header(client: httpx.Client) -> None:
    response = client.get("/echo")
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1


def test_proxy_keeps_no_cookies_between_visitors(client: httpx.Client) -> None:
    client.get("/cookies")
    echoed = httpx.get(str(client.base_url) + "/echo").json()
    assert _header(echoed, "cookie") is None


# -- status codes and bodies -------------------------------------------------------------------------
def test_head_keeps_length_and_sends_no_body(client: httpx.Client) -> None:
    response = client.head("/page")
    assert response.status_code == 200
    assert response.headers["content-length"] == "1234"
    assert response.content == b""


def test_204_and_304_pass_without_body(client: httpx.Client) -> None:
    no_content = client.get("/no-content")
    assert (no_content.status_code, no_content.content, no_content.headers["x-marker"]) == (204, b"", "204")
    not_modified = client.get("/not-modified", headers={"If-None-Match": '"v1"'})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert not_modified.headers["etag"] == '"v1"'


def test_redirects_are_passed_not_followed(client: httpx.Client) -> None:
    response = client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"


def test_compressed_body_passes_through_untouched(client: httpx.Client) -> None:
    with client.stream("GET", "/gzipped", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(raw)
    assert gzip.decompress(raw) == b"<p>compressed</p>" * 50


# -- failures ----------------------------------------------------------------------------------------
def test_closed_upstream_port_answers_clean_502() -> None:
    port = _closed_port()
    before = metrics.value("upstream_errors_total", kind="connect")
    with ServerThread(UpstreamProxy(f"http://127.0.0.1:{port}", connect_timeout=1.0)) as proxy:
        response = httpx.get(proxy.url + "/anything")
    assert response.status_code == 502
    assert response.json() == {"error": {"code": "upstream_unavailable", "message": "The site could not be reached."}}
    assert str(port) not in response.text
    assert metrics.value("upstream_errors_total", kind="connect") == before + 1


def test_a_browser_gets_the_upstream_error_as_a_page_not_as_json() -> None:
    with ServerThread(UpstreamProxy(f"http://127.0.0.1:{_closed_port()}", connect_timeout=1.0)) as proxy:
        page = httpx.get(proxy.url + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        api = httpx.get(proxy.url + "/api", headers={"Accept": "application/json"})
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>The site could not be reached.</h1>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert api.status_code == 502
    assert api.json()["error"]["code"] == "upstream_unavailable"


def test_slow_upstream_answers_clean_504(client: httpx.Client) -> None:
    before = metrics.value("upstream_errors_total", kind="timeout")
    started = time.monotonic()
    response = client.get("/slow")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 3.5  # answered at the 0.5 s read timeout, not after the upstream
    assert metrics.value("upstream_errors_total", kind="timeout") == before + 1


class _BrokenUpstream:
    """A raw socket server that starts an answer and hangs up in the middle of its body."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(self.head)
                    time.sleep(0.05)

    def close(self) -> None:
        self.sock.close()


def test_upstream_failing_mid_chunked_body_aborts_the_body() -> None:
    site = _BrokenUpstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n5\r\n<p>hi\r\n"
    )
    before = metrics.value("upstream_errors_total", kind="broken_body")
    try:
        with ServerThread(UpstreamProxy(f"http://127.0.0.1:{site.port}")) as proxy:
            # A truncated body must not end well-formed (issue 10): the visitor's connection is dropped.
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(proxy.url + "/")
    finally:
        site.close()
    assert metrics.value("upstream_errors_total", kind="broken_body") == before + 1


def test_upstream_failing_mid_sized_body_leaves_the_visitor_a_visibly_short_answer() -> None:
    site = _BrokenUpstream(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 100\r\n\r\n<p>hi")
    try:
        with ServerThread(UpstreamProxy(f"http://127.0.0.1:{site.port}")) as proxy:
            # A body shorter than its Content-Length must not look complete.
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.get(proxy.url + "/")
    finally:
        site.close()


# -- WebSocket ---------------------------------------------------------------------------------------
async def test_websocket_echo_passes_through(proxy: ServerThread) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/ws", protocols=("chat.v1",)) as ws:
            assert ws.protocol == "chat.v1"
            await ws.send_str("hello")
            assert await ws.receive_str(timeout=WAIT_SECONDS) == "echo:hello"
            await ws.send_bytes(b"\x00\x01")
            assert await ws.receive_bytes(timeout=WAIT_SECONDS) == b"echo:\x00\x01"
            await ws.send_str("bye")
            closing = await ws.receive(timeout=WAIT_SECONDS)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4001


async def test_websocket_to_closed_upstream_is_refused_with_502() -> None:
    with ServerThread(UpstreamProxy(f"http://127.0.0.1:{_closed_port()}", connect_timeout=1.0)) as proxy:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(proxy.url + "/ws")
    assert refused.value.status == 502


async def test_websocket_disabled_answers_501(upstream: ServerThread) -> None:
    with ServerThread(UpstreamProxy(upstream.url, websocket=False)) as proxy:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(proxy.url + "/ws")
    assert refused.value.status == 501


def test_upstream_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        UpstreamProxy("ftp://example.org")


# -- end to end: the gateway in front of the proxy (what `consent-gateway proxy` runs) ---------------
TRACKED_PAGE = (
    "<!doctype html><html><head><title>shop</title>"
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-E2E"></script></head>'
    "<body><h1>Welcome</h1>"
    '<iframe src="https://www.youtube.com/embed/abc123"></iframe></body></html>'
)


def tracked_site() -> Starlette:
    async def home(request: Request) -> Response:
        response = Response(
            gzip.compress(TRACKED_PAGE.encode()), media_type="text/html", headers={"content-encoding": "gzip"}
        )
        response.set_cookie("_ga", "GA1.1.1.1")
        response.set_cookie("session", "s1")
        return response

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("echo:" + await websocket.receive_text())
        await websocket.close()

    return Starlette(routes=[Route("/", home), WebSocketRoute("/ws", ws_echo)])


@pytest.fixture
def gateway_proxy(config: Any) -> Iterator[str]:
    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import TEST_SECRET_KEYS

    with ServerThread(tracked_site()) as site:
        app = ConsentGateway(UpstreamProxy(site.url), config, secret_keys=TEST_SECRET_KEYS)
        with ServerThread(app) as gateway:
            yield gateway.url


def test_gateway_through_proxy_holds_back_trackers_of_a_compressed_page(gateway_proxy: str) -> None:
    response = httpx.get(gateway_proxy + "/", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    html = response.text
    assert "<h1>Welcome</h1>" in html
    assert '<script async src="https://www.googletagmanager.com' not in html
    assert 'data-cg-src="https://www.googletagmanager.com/gtag/js?id=G-E2E"' in html
    assert '<iframe src="https://www.youtube.com' not in html
    assert [c.split("=")[0] for c in response.headers.get_list("set-cookie")] == ["session"]
    assert "Cookie" in response.headers["vary"]


async def test_gateway_through_proxy_passes_websockets(gateway_proxy: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway_proxy + "/ws") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=WAIT_SECONDS) == "echo:hi"
