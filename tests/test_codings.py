"""Content codings fail closed (issue 10, item 1): what `consent-gateway proxy` and the middleware do with
pages in every coding a browser can receive, stacked codings, unknown ones and decompression bombs, and what
the visitor receives back (compressed again when it accepts it). Real origins over loopback."""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import brotli
import httpx
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway.cli import proxy_app
from consent_gateway.codings import BodyDecoder, UndecodableBody, decodable_accept_encoding
from consent_gateway.config import Config
from consent_gateway.middleware import ConsentGateway
from tests.conftest import TEST_SECRET_KEYS
from tests.servers import WAIT_SECONDS, ServerThread

TRACKER = "https://www.googletagmanager.com/gtag/js?id=G-CODINGS"
PAGE = (
    f'<!doctype html><html><head><title>shop</title><script async src="{TRACKER}"></script></head>'
    "<body><h1>Welcome</h1></body></html>"
).encode()
#: what every browser of 2025 sends (Chrome, Firefox)
BROWSER_ACCEPT = "gzip, deflate, br, zstd"


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _encoded(codings: str, data: bytes) -> bytes:
    coders = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress, "zstd": _zstd}
    for coding in codings.split(","):
        data = coders[coding.strip()](data)
    return data


class Origin:
    """What the origin was asked: the Accept-Encoding each request carried."""

    def __init__(self) -> None:
        self.accept_encoding: list[str | None] = []
        self.release = threading.Event()
        #: 100 MiB of HTML, ~100 KB gzipped: built once with the origin, not while a request waits on it
        self.bomb = gzip.compress(PAGE + b" " * (100 * 1024 * 1024), compresslevel=9)


def origin_app(origin: Origin) -> Starlette:
    def coded(request: Request) -> Response:
        origin.accept_encoding.append(request.headers.get("accept-encoding"))
        codings = request.query_params.get("c", "")
        body = _encoded(codings, PAGE) if codings else PAGE
        headers = {"content-encoding": codings} if codings else {}
        return Response(body, media_type="text/html", headers=headers)

    def unknown(request: Request) -> Response:
        # an origin that ignores Accept-Encoding and answers in a coding nobody here can read
        return Response(b"\x01\x02" + PAGE, media_type="text/html", headers={"content-encoding": "x-custom"})

    def bomb(request: Request) -> Response:
        return Response(origin.bomb, media_type="text/html", headers={"content-encoding": "gzip"})

    def corrupt(request: Request) -> Response:
        return Response(b"\x1f\x8b\x08\x00garbage" * 10, media_type="text/html", headers={"content-encoding": "gzip"})

    async def slow(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield PAGE[:-14] + b"<p>first</p>" + b" " * 2048
            for _ in range(int(WAIT_SECONDS * 20)):
                if origin.release.is_set():
                    break
                await _sleep(0.05)
            yield b"<p>second</p></body></html>"

        return StreamingResponse(chunks(), media_type="text/html")

    def legacy(request: Request) -> Response:
        # no charset in the header, only in the page's <meta>; the site lets shared caches keep it
        body = b'<!doctype html><html><head><meta charset="windows-1252"><title>caf\xe9</title></head><body>' + PAGE
        headers = {"content-type": "text/html", "cache-control": "public, max-age=60", "vary": "Origin"}
        return Response(body, headers=headers)

    return Starlette(
        routes=[
            Route("/", coded),
            Route("/legacy", legacy),
            Route("/unknown", unknown),
            Route("/bomb", bomb),
            Route("/corrupt", corrupt),
            Route("/slow", slow),
            Route("/data", lambda request: JSONResponse({"ok": True})),
        ]
    )


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture(scope="module")
def origin() -> Iterator[tuple[Origin, ServerThread]]:
    shared = Origin()
    with ServerThread(origin_app(shared)) as server:
        yield shared, server


@pytest.fixture
def gateway(config: Config, origin: tuple[Origin, ServerThread]) -> Iterator[str]:
    small = replace(config, gateway=replace(config.gateway, html_max_decoded_bytes=4 * 1024 * 1024))
    with ServerThread(proxy_app(origin[1].url, small)) as server:
        yield server.url


def _assert_rewritten(html: str) -> None:
    assert "<h1>Welcome</h1>" in html
    assert f'<script async src="{TRACKER}"' not in html
    assert f'data-cg-src="{TRACKER}"' in html
    assert "cg-config" in html  # the banner is in


def _raw(url: str, accept_encoding: str, timeout: float = WAIT_SECONDS) -> httpx.Response:
    """The answer as it came on the wire: httpx would otherwise undo the coding it announced itself."""
    with httpx.Client(timeout=timeout) as client:
        response = client.get(url, headers={"Accept-Encoding": accept_encoding})
        response.read()
    return response


# -- what the origin is offered ---------------------------------------------------------------------------


def test_the_origin_is_offered_only_codings_the_gateway_decodes(
    gateway: str, origin: tuple[Origin, ServerThread]
) -> None:
    httpx.get(gateway + "/", headers={"Accept-Encoding": "gzip, deflate, br, zstd, compress, x-custom;q=0.9"})
    assert origin[0].accept_encoding[-1] == "gzip, deflate, br, zstd"
    httpx.get(gateway + "/", headers={"Accept-Encoding": "compress"})
    assert origin[0].accept_encoding[-1] == "identity"  # never "nothing", which would mean "any coding"


@pytest.mark.parametrize(
    ("value", "offered"),
    [
        ("*", "br, gzip, zstd, deflate"),
        ("gzip;q=0.5, br;q=0", "gzip;q=0.5"),
        ("identity", "identity"),
        ("GZIP, x-gzip", "gzip, x-gzip"),
    ],
)
def test_accept_encoding_keeps_weights_and_expands_the_star(value: str, offered: str) -> None:
    assert decodable_accept_encoding(value) == offered


# -- pages in every coding, through the proxy -------------------------------------------------------------


@pytest.mark.parametrize("codings", ["zstd", "gzip", "deflate", "br", "gzip, br", "br, zstd", "deflate, gzip, zstd"])
def test_a_page_in_any_browser_coding_is_decoded_and_rewritten(gateway: str, codings: str) -> None:
    # the repro: curl -H 'Accept-Encoding: gzip, deflate, br, zstd' GW/page, origin answers zstd
    response = _raw(gateway + "/?c=" + codings.replace(" ", ""), "identity")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    _assert_rewritten(response.text)


def test_an_unknown_coding_on_a_page_is_a_clean_502_never_the_page(gateway: str) -> None:
    before = metrics.value("html_refused_total", reason="unknown_coding")
    response = _raw(gateway + "/unknown", BROWSER_ACCEPT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "unreadable_page"
    assert TRACKER.encode() not in response.content
    assert metrics.value("html_refused_total", reason="unknown_coding") == before + 1


def test_a_gzip_bomb_is_refused_at_the_bound_not_decoded_whole(gateway: str) -> None:
    before = metrics.value("html_refused_total", reason="too_large")
    started = time.monotonic()
    response = _raw(gateway + "/bomb", BROWSER_ACCEPT, timeout=30)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "unreadable_page"
    assert metrics.value("html_refused_total", reason="too_large") == before + 1
    assert time.monotonic() - started < 30  # stopped at 4 MiB: no 100 MiB decoded and rewritten first


def test_a_corrupt_compressed_page_is_a_clean_502(gateway: str) -> None:
    before = metrics.value("html_refused_total", reason="corrupt")
    response = _raw(gateway + "/corrupt", BROWSER_ACCEPT)
    assert response.status_code == 502
    assert metrics.value("html_refused_total", reason="corrupt") == before + 1


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_decoding_holds_memory_near_the_bound_whatever_the_ratio(coding: str) -> None:
    zeros = b"\0" * (16 * 1024 * 1024)
    fast = {"gzip": lambda d: gzip.compress(d, 1), "br": lambda d: brotli.compress(d, quality=1)}
    bomb = fast[coding](zeros) if coding in fast else _encoded(coding, zeros)
    decoder = BodyDecoder([coding], 2 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(UndecodableBody) as refused:
            for start in range(0, len(bomb), 65536):
                decoder.decode(bomb[start : start + 65536])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.reason == "too_large"
    assert peak < 4 * 1024 * 1024  # the 2 MiB bound and one 64 KiB piece, not 16 MiB


def test_a_deflate_body_without_its_zlib_header_is_read_too() -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = raw.compress(PAGE) + raw.flush()
    decoder = BodyDecoder(["deflate"], 1 << 20)
    assert b"".join(decoder.decode(body[i : i + 1]) for i in range(len(body))) + decoder.finish() == PAGE


# -- compressed again toward the visitor ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "coding", "decode"),
    [
        (BROWSER_ACCEPT, "br", brotli.decompress),
        ("gzip, deflate", "gzip", gzip.decompress),
        ("br;q=0, gzip", "gzip", gzip.decompress),
    ],
)
def test_the_rewritten_page_goes_back_compressed_when_the_visitor_accepts_it(
    gateway: str, accept: str, coding: str, decode: Any
) -> None:
    with httpx.Client(timeout=WAIT_SECONDS) as client, client.stream(
        "GET", gateway + "/?c=zstd", headers={"Accept-Encoding": accept}
    ) as response:
        wire = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == coding
    assert "Accept-Encoding" in response.headers["vary"] and "Cookie" in response.headers["vary"]
    _assert_rewritten(decode(wire).decode())


def test_the_compressed_page_still_streams_chunk_by_chunk(gateway: str, origin: tuple[Origin, ServerThread]) -> None:
    origin[0].release.clear()
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    seen = b""
    try:
        with httpx.Client(timeout=WAIT_SECONDS) as client, client.stream(
            "GET", gateway + "/slow", headers={"Accept-Encoding": "gzip"}
        ) as response:
            assert response.headers["content-encoding"] == "gzip"
            pieces = response.iter_raw()
            for piece in pieces:
                seen += decoder.decompress(piece)
                if b"<p>first</p>" in seen:
                    break
            # the first part arrived, decodable, while the origin still holds the rest back
            assert b"<p>first</p>" in seen and b"second" not in seen
            origin[0].release.set()
            for piece in pieces:
                seen += decoder.decompress(piece)
    finally:
        origin[0].release.set()
    assert seen.endswith(b"<p>second</p></body></html>")


def test_compress_false_leaves_compression_to_the_edge(config: Config, origin: tuple[Origin, ServerThread]) -> None:
    edge = replace(config, gateway=replace(config.gateway, compress=False))
    with ServerThread(proxy_app(origin[1].url, edge)) as server:
        response = _raw(server.url + "/?c=br", BROWSER_ACCEPT)
    assert "content-encoding" not in response.headers
    _assert_rewritten(response.text)


def test_other_responses_keep_their_coding_and_pass_untouched(gateway: str) -> None:
    response = _raw(gateway + "/data", BROWSER_ACCEPT)
    assert response.json() == {"ok": True}
    assert "vary" not in response.headers


# -- HEAD: what a GET would say, without the body ---------------------------------------------------------

#: what a HEAD answer must say as the GET answer does: how the body is coded, typed, varied and cached
_HEAD_HEADERS = ("content-type", "content-encoding", "vary", "cache-control", "content-length")


def _head_and_get(url: str, accept: str) -> tuple[httpx.Response, httpx.Response]:
    with httpx.Client(timeout=WAIT_SECONDS) as client:
        head = client.head(url, headers={"Accept-Encoding": accept})
        get = client.get(url, headers={"Accept-Encoding": accept})
    return head, get


@pytest.mark.parametrize("path", ["/?c=gzip", "/legacy"])
@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "gzip", "identity"])
def test_head_of_a_page_says_what_its_get_says_and_sends_no_body(gateway: str, path: str, accept: str) -> None:
    head, get = _head_and_get(gateway + path, accept)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b""
    for name in _HEAD_HEADERS:
        assert head.headers.get(name) == get.headers.get(name), name
    if accept != "identity":
        assert head.headers["content-encoding"] == ("br" if "br" in accept else "gzip")
    if path == "/legacy":
        assert head.headers["content-type"] == "text/html; charset=windows-1252"
        assert head.headers["cache-control"].startswith("private")


def test_head_in_middleware_mode_says_what_its_get_says(embedded: str) -> None:
    head, get = _head_and_get(embedded + "/?c=br", BROWSER_ACCEPT)
    assert head.content == b"" and head.headers["content-encoding"] == "br"
    for name in _HEAD_HEADERS:
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_of_other_responses_still_passes_their_headers(gateway: str) -> None:
    head, get = _head_and_get(gateway + "/data", BROWSER_ACCEPT)
    assert head.content == b"" and head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == "application/json"


# -- banner files, precompressed --------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "coding", "decode"), [("br, gzip", "br", brotli.decompress),
                                                         ("gzip", "gzip", gzip.decompress)])
def test_banner_files_are_served_precompressed_with_vary(gateway: str, accept: str, coding: str, decode: Any) -> None:
    plain = _raw(gateway + "/_consent/banner.js", "identity")
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    with httpx.Client(timeout=WAIT_SECONDS) as client, client.stream(
        "GET", gateway + "/_consent/banner.js", headers={"Accept-Encoding": accept}
    ) as response:
        wire = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert decode(wire) == plain.content
    assert len(wire) < len(plain.content) / 2
    assert response.headers["etag"] != plain.headers["etag"]  # another representation, another validator
    again = httpx.get(gateway + "/_consent/banner.js", headers={"Accept-Encoding": accept,
                                                               "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


# -- the middleware around an app that compresses ---------------------------------------------------------


def compressing_app() -> Starlette:
    def page(request: Request) -> Response:
        codings = request.query_params["c"]
        return Response(_encoded(codings, PAGE) if codings != "x-custom" else b"??", media_type="text/html",
                        headers={"content-encoding": codings})

    return Starlette(routes=[Route("/", page)])


@pytest.fixture
def embedded(config: Config) -> Iterator[str]:
    with ServerThread(ConsentGateway(compressing_app(), config, secret_keys=TEST_SECRET_KEYS)) as server:
        yield server.url


@pytest.mark.parametrize("codings", ["zstd", "gzip, br"])
def test_middleware_decodes_what_the_app_compressed(embedded: str, codings: str) -> None:
    response = _raw(embedded + "/?c=" + codings, "identity")
    assert response.status_code == 200
    _assert_rewritten(response.text)


def test_middleware_refuses_an_app_page_in_an_unknown_coding(embedded: str) -> None:
    response = _raw(embedded + "/?c=x-custom", BROWSER_ACCEPT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "unreadable_page"
