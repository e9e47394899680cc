"""Bodies a byte-level rewriter cannot read as they come (issue 10, item 2), through `consent-gateway proxy`
in front of a real origin over loopback: UTF-16 pages (by header, or by a BOM that overrides the header),
pages sent without a Content-Type that browsers sniff as HTML, and tags a <select> makes live."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from consent_gateway import metrics
from consent_gateway.charsets import Transcoder, header_encoding
from consent_gateway.cli import proxy_app
from consent_gateway.codings import UndecodableBody
from consent_gateway.config import Config
from consent_gateway.mimesniff import browser_content_type, sniffs_as_html
from consent_gateway.scripted_xml import MAX_CONSTRUCT_BYTES, ScriptScan
from tests.servers import WAIT_SECONDS, ServerThread

TRACKER = "https://www.googletagmanager.com/gtag/js?id=G-BODIES"
#: an emoji (a surrogate pair in UTF-16) and accents, so that cut code units would show
PAGE = (
    f'<!doctype html><html><head><title>Café 🍪</title><script async src="{TRACKER}"></script></head>'
    "<body><h1>Bienvenue 🍪</h1></body></html>"
)


def _chunks(body: bytes, size: int) -> StreamingResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    return StreamingResponse(pieces(), headers={"content-type": "text/html; charset=utf-8"})


def origin_app() -> Starlette:
    def utf16(request: Request) -> Response:
        codec, charset = request.query_params["codec"], request.query_params["charset"]
        bom = "bom" in request.query_params
        body = (("\ufeff" if bom else "") + PAGE).encode(codec)
        size = int(request.query_params.get("chunk", "0"))
        if size:
            response = _chunks(body, size)
            response.headers["content-type"] = f"text/html; charset={charset}"
            return response
        return Response(body, headers={"content-type": f"text/html; charset={charset}"})

    def untyped(request: Request) -> Response:
        body = request.query_params.get("body", PAGE).encode()
        headers = {}
        if "nosniff" in request.query_params:
            headers["x-content-type-options"] = "nosniff"
        if "gzip" in request.query_params:
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        return Response(body, headers=headers)  # no media type: no Content-Type header at all

    def markup(request: Request) -> Response:
        return Response(request.query_params["html"], media_type="text/html")

    def typed(request: Request) -> Response:
        # each `ct` parameter is one Content-Type line, as the site sent it; `nul`: NUL bytes before the page
        response = Response(b"\0" * int(request.query_params.get("nul", "0")) + PAGE.encode())
        response.raw_headers += [(b"content-type", value.encode()) for value in request.query_params.getlist("ct")]
        return response

    def linked(request: Request) -> Response:
        # each `link` parameter is one Link line of a page
        response = Response(PAGE.encode(), media_type="text/html")
        response.raw_headers += [(b"link", value.encode()) for value in request.query_params.getlist("link")]
        response.raw_headers += [(b"refresh", value.encode()) for value in request.query_params.getlist("refresh")]
        return response

    def stream(request: Request) -> StreamingResponse:
        # a multipart/x-mixed-replace stream: a camera's frames, then (`page`) a part typed as asked
        boundary = b"frame"

        async def parts() -> AsyncIterator[bytes]:
            for _ in range(2):
                yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\r\n"
            if "page" in request.query_params:
                await asyncio.sleep(0.3)  # the frames are out before the page part comes
                part_type = request.query_params["page"].encode()
                header = b"Content-Type: " + part_type + b"\r\n" if part_type else b""
                # cut inside the delimiter and the header, as a network may cut it
                yield b"--fra"
                yield b"me\r\n" + header[:9]
                yield header[9:] + b"\r\n" + PAGE.encode() + b"\r\n"
            yield b"--frame--\r\n"

        first = request.query_params.get("first")
        if first is not None:

            async def first_part() -> AsyncIterator[bytes]:
                yield b"--frame\r\nContent-Type: " + first.encode() + b"\r\n\r\n" + PAGE.encode() + b"\r\n"

            return StreamingResponse(first_part(), media_type="multipart/x-mixed-replace; boundary=frame")
        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={boundary.decode()}")

    def xml(request: Request) -> Response:
        # an SVG or XML document: `doc` names one of DOCUMENTS, `type` its Content-Type, `gzip` compresses it
        body = DOCUMENTS[request.query_params["doc"]].encode()
        headers = {"content-type": request.query_params.get("type", "image/svg+xml")}
        if "gzip" in request.query_params:
            body = gzip.compress(body)
            headers["content-encoding"] = "gzip"
        return Response(body, headers=headers)

    def long_xml(request: Request) -> StreamingResponse:
        # a long scriptless start goes out before the script comes
        async def pieces() -> AsyncIterator[bytes]:
            yield b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<rect width='1' height='1'/>" * 500
            await asyncio.sleep(0.2)
            yield f'<script href="{TRACKER}"/></svg>'.encode()

        return StreamingResponse(pieces(), media_type="image/svg+xml")

    return Starlette(
        routes=[
            Route("/xml", xml),
            Route("/long-xml", long_xml),
            Route("/stream", stream),
            Route("/utf16", utf16),
            Route("/untyped", untyped),
            Route("/markup", markup),
            Route("/typed", typed),
            Route("/linked", linked),
        ]
    )


@pytest.fixture(scope="module")
def origin() -> Iterator[ServerThread]:
    with ServerThread(origin_app()) as server:
        yield server


@pytest.fixture
def gateway(config: Config, origin: ServerThread) -> Iterator[str]:
    plain = replace(config, gateway=replace(config.gateway, compress=False))  # the bytes as they are
    with ServerThread(proxy_app(origin.url, plain)) as server:
        yield server.url


#: SVG and XML documents: with scripts (each a way a browser runs one), and without
DOCUMENTS = {
    "svg-script": f'<svg xmlns="http://www.w3.org/2000/svg"><script href="{TRACKER}"/><circle r="4"/></svg>',
    "svg-inline": (
        '<svg xmlns="http://www.w3.org/2000/svg"><svg:script xmlns:svg="http://www.w3.org/2000/svg">'
        "new Image().src='https://www.facebook.com/tr?id=1'</svg:script></svg>"
    ),
    "svg-onload": "<svg xmlns='http://www.w3.org/2000/svg' onload=\"fetch('https://www.facebook.com/tr')\"/>",
    "xml-xhtml-script": (
        '<?xml version="1.0"?><feed xmlns:h="http://www.w3.org/1999/xhtml">'
        f'<h:script src="{TRACKER}"></h:script></feed>'
    ),
    "svg-icon": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><circle cx="4" cy="4" r="4"/></svg>',
    "xml-data": '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title></channel></rss>',
    # a feed about the web: its words and quoted markup run nothing
    "xml-feed-about-scripts": (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>javascript: the good parts</title>'
        "<description><![CDATA[<p>Paste <script src=x></script> and onload=go()</p>]]></description>"
        "<!-- <script>old()</script> --><item><title>Someone = no one</title></item></channel></rss>"
    ),
    "svg-illustrator": (  # entities for namespaces, as Illustrator writes them: no markup in their values
        '<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [<!ENTITY ns_svg "http://www.w3.org/2000/svg">]>'
        '<svg xmlns="&ns_svg;"><circle r="4"/></svg>'
    ),
}


def _assert_rewritten(text: str) -> None:
    assert "<h1>Bienvenue 🍪</h1>" in text and "<title>Café 🍪</title>" in text
    assert f'<script async src="{TRACKER}"' not in text
    assert f'data-cg-src="{TRACKER}"' in text
    assert "cg-config" in text


# -- UTF-16 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "codec", "bom"),
    [
        ("codec=utf-16-le&charset=utf-16", "utf-16-le", b""),  # by header only ("utf-16" is little-endian)
        ("codec=utf-16-be&charset=utf-16be", "utf-16-be", b""),
        ("codec=utf-16-le&charset=utf-8&bom=1", "utf-16-le", b"\xff\xfe"),  # the BOM beats the header
        ("codec=utf-16-be&charset=utf-8&bom=1", "utf-16-be", b"\xfe\xff"),
        ("codec=utf-16-le&charset=windows-1252&bom=1", "utf-16-le", b"\xff\xfe"),
    ],
)
def test_a_utf16_page_is_rewritten_and_sent_back_in_utf16(gateway: str, query: str, codec: str, bom: bytes) -> None:
    before = metrics.value("rewrite_passthrough_total", reason="encoding")
    response = httpx.get(gateway + "/utf16?" + query, timeout=WAIT_SECONDS)
    assert response.status_code == 200
    assert response.content.startswith(bom)
    _assert_rewritten(response.content[len(bom) :].decode(codec))
    assert metrics.value("rewrite_passthrough_total", reason="encoding") == before


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_utf16_chunks_cut_between_code_units_and_surrogates_decode_whole(gateway: str, chunk: int) -> None:
    response = httpx.get(gateway + f"/utf16?codec=utf-16-le&charset=utf-8&bom=1&chunk={chunk}", timeout=WAIT_SECONDS)
    assert response.content.startswith(b"\xff\xfe")
    text = response.content[2:].decode("utf-16-le")  # strict: a cut surrogate pair would raise
    _assert_rewritten(text)


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_transcoder_gives_the_same_bytes_at_every_chunking(chunk: int) -> None:
    body = ("\ufeff" + PAGE).encode("utf-16-be")
    transcoder = Transcoder(header_encoding(b"text/html; charset=utf-8"))
    utf8 = b"".join(
        transcoder.to_utf8(body[i : i + chunk], final=i + chunk >= len(body)) for i in range(0, len(body), chunk)
    )
    assert utf8 == PAGE.encode()
    back = b"".join(
        transcoder.from_utf8(utf8[i : i + chunk], final=i + chunk >= len(utf8)) for i in range(0, len(utf8), chunk)
    )
    assert back == body


# -- Content-Type as a browser reads it (Fetch: "extract a MIME type") --------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        ["text/plain, text/html"],  # the last valid type of the list wins
        ["text/html", "nonsense"],  # a value that is no MIME type is skipped
        ["text/html; charset=utf-8", "*/*"],  # so is */*
        ['text/plain; charset="a,b", text/html'],  # a comma in quotes splits nothing
        ["html"],  # no valid type at all: the browser sniffs, and this body is a page
        ["text/html;", "text/html; charset=utf-8"],
        # no charset parameter for a browser (which reads the page as UTF-8): never transcoded from UTF-16
        ["text/html; xcharset=utf-16"],
        ['text/html; x="charset=utf-16"'],
        ["text/html; charset=utf-8; charset=utf-16"],  # the first one counts
    ],
)
def test_a_page_typed_html_the_way_a_browser_reads_the_header_is_rewritten(gateway: str, lines: list[str]) -> None:
    response = httpx.get(gateway + "/typed", params={"ct": lines}, timeout=WAIT_SECONDS)
    _assert_rewritten(response.content.decode())
    # one Content-Type goes out, the one the page was rewritten as
    (content_type,) = response.headers.get_list("content-type")
    assert content_type.startswith("text/html")


@pytest.mark.parametrize(
    ("lines", "read_as"),
    [
        ([b"text/html;charset=gbk", b"text/html"], (b"text/html", b"gbk")),  # Fetch's own examples
        ([b"text/html;charset=gbk", b"text/plain", b"text/html"], (b"text/html", None)),
        ([b"text/html;x=,text/html"], (b"text/html", None)),
        ([b"text/html;charset=gbk;charset=windows-1255"], (b"text/html", b"gbk")),
        ([b' TEXT/HTML ; Charset="utf-8"'], (b"text/html", b"utf-8")),
        ([b"text/html", b"*/*"], (b"text/html", None)),
        ([b"*/*"], None),
        ([b"text /html"], None),
        ([b""], None),
    ],
)
def test_content_type_lines_are_read_as_fetch_reads_them(
    lines: list[bytes], read_as: tuple[bytes, bytes | None] | None
) -> None:
    assert browser_content_type(lines) == read_as


@pytest.mark.parametrize("nul", [1, 2, 3])
@pytest.mark.parametrize("charset", ["", "; charset=utf-8"])
def test_nul_bytes_before_a_page_do_not_let_it_pass_unread(gateway: str, nul: int, charset: str) -> None:
    # a browser reads the NULs as characters it ignores, then the page and its tags: no UTF-16 without a BOM
    # or a UTF-16 charset, so the page is rewritten as bytes, not passed as "another encoding"
    response = httpx.get(gateway + "/typed", params={"ct": "text/html" + charset, "nul": nul}, timeout=WAIT_SECONDS)
    assert response.content.count(b"\0") == nul  # kept, the rest read as any page
    _assert_rewritten(response.content.replace(b"\0", b"").decode())


@pytest.mark.parametrize("lines", [["text/html", "text/plain"], ["text/html, application/json"]])
def test_a_header_a_browser_reads_as_another_type_leaves_the_body_alone(gateway: str, lines: list[str]) -> None:
    response = httpx.get(gateway + "/typed", params={"ct": lines}, timeout=WAIT_SECONDS)
    assert response.content == PAGE.encode()


# -- Link headers: what a browser fetches before it reads the page ------------------------------------------

GTM_PRELOAD = "<https://www.googletagmanager.com/gtag/js?id=G-LINK>; rel=preload; as=script"
PIXEL_PRECONNECT = '<https://connect.facebook.net>; rel="preconnect dns-prefetch"'
OWN_LINKS = '</app.css>; rel=preload; as=style, <https://example.org/fr/>; rel=alternate; hreflang="fr, x"'


def test_link_headers_to_trackers_are_held_back_before_consent(gateway: str) -> None:
    before = metrics.value("held_back_tags_total", vendor="meta-pixel")
    response = httpx.get(
        gateway + "/linked", params={"link": [GTM_PRELOAD, f"{PIXEL_PRECONNECT}, {OWN_LINKS}"]}, timeout=WAIT_SECONDS
    )
    _assert_rewritten(response.text)
    links = ", ".join(response.headers.get_list("link"))
    # the browser would preload the tag manager and open a connection to the pixel's host: neither goes out
    assert "googletagmanager" not in links and "facebook" not in links
    # the site's own preload and its alternate (a comma inside quotes is no separator) stay as they were
    assert links == OWN_LINKS
    assert metrics.value("held_back_tags_total", vendor="meta-pixel") == before + 1


def test_link_headers_of_granted_vendors_pass(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=WAIT_SECONDS) as visitor:
        same_origin = {"Sec-Fetch-Site": "same-origin"}
        chosen = visitor.post("/_consent/choices", json={"action": "accept_all"}, headers=same_origin)
        assert chosen.status_code == 200
        response = visitor.get("/linked", params={"link": [GTM_PRELOAD, PIXEL_PRECONNECT]})
    assert response.headers.get_list("link") == [GTM_PRELOAD, PIXEL_PRECONNECT]


def test_a_link_header_that_cannot_be_read_is_not_passed_when_it_could_fetch(gateway: str) -> None:
    response = httpx.get(
        gateway + "/linked",
        params={
            "link": ["https://www.googletagmanager.com/gtm.js; rel=preload", "<https://x.example/>; rel=canonical"]
        },
        timeout=WAIT_SECONDS,
    )
    assert response.headers.get_list("link") == ["<https://x.example/>; rel=canonical"]


@pytest.mark.parametrize(
    ("refresh", "kept"),
    [
        ("0; url=https://connect.facebook.net/tr?id=1", False),
        ("0;URL='https://www.googletagmanager.com/ns.html?id=GTM-X'", False),
        ("30", True),
        ("5; url=/next", True),
    ],
)
def test_a_refresh_header_to_a_tracker_is_held_back(gateway: str, refresh: str, kept: bool) -> None:
    response = httpx.get(gateway + "/linked", params={"refresh": refresh}, timeout=WAIT_SECONDS)
    _assert_rewritten(response.text)
    assert response.headers.get_list("refresh") == ([refresh] if kept else [])


# -- multipart/x-mixed-replace: each part shown in place of the last ------------------------------------------


def test_a_camera_stream_of_images_passes_untouched(gateway: str) -> None:
    response = httpx.get(gateway + "/stream", timeout=WAIT_SECONDS)
    assert response.status_code == 200
    assert response.content.count(b"Content-Type: image/jpeg") == 2 and response.content.endswith(b"--frame--\r\n")


@pytest.mark.parametrize("part_type", ["text/html; charset=utf-8", "application/xhtml+xml", ""])
def test_a_part_a_browser_renders_as_a_page_never_reaches_it(gateway: str, part_type: str) -> None:
    before = metrics.value("html_refused_total", reason="multipart_page")
    received = b""
    with (
        httpx.Client(timeout=WAIT_SECONDS) as client,
        client.stream("GET", gateway + "/stream", params={"page": part_type}) as response,
    ):
        assert response.status_code == 200  # the frames went out as they came
        with pytest.raises(httpx.HTTPError):  # then the connection breaks off: no well-formed end
            for piece in response.iter_raw():
                received += piece
    assert TRACKER.encode() not in received and received.count(b"image/jpeg") <= 2
    assert metrics.value("html_refused_total", reason="multipart_page") == before + 1


def test_a_stream_whose_first_part_is_a_page_is_a_clean_502(gateway: str) -> None:
    response = httpx.get(gateway + "/stream", params={"first": "text/html"}, timeout=WAIT_SECONDS)
    assert response.status_code == 502 and response.json()["error"]["code"] == "unreadable_page"
    assert TRACKER.encode() not in response.content


# -- no Content-Type ---------------------------------------------------------------------------------------


def test_a_page_without_content_type_is_sniffed_and_rewritten(gateway: str) -> None:
    before = metrics.value("sniffed_html_total")
    response = httpx.get(gateway + "/untyped", timeout=WAIT_SECONDS)
    assert response.headers["content-type"] == "text/html"
    _assert_rewritten(response.text)
    assert "Cookie" in response.headers["vary"]
    assert metrics.value("sniffed_html_total") == before + 1


def test_a_compressed_page_without_content_type_is_sniffed_too(gateway: str) -> None:
    _assert_rewritten(httpx.get(gateway + "/untyped?gzip=1", timeout=WAIT_SECONDS).text)


@pytest.mark.parametrize("body", ['{"ok": true}', "plain words", "   \n", "<pre>text</pre>", ""])
def test_other_untyped_bodies_pass_untouched(gateway: str, body: str) -> None:
    response = httpx.get(gateway + "/untyped", params={"body": body}, timeout=WAIT_SECONDS)
    assert response.content == body.encode()
    assert "content-type" not in response.headers and "vary" not in response.headers


def test_nosniff_keeps_an_untyped_page_from_being_html(gateway: str) -> None:
    # with nosniff, a browser does not run an untyped body as a page: nothing to rewrite
    response = httpx.get(gateway + "/untyped?nosniff=1", timeout=WAIT_SECONDS)
    assert response.content == PAGE.encode()


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (b"  \n<!DOCTYPE html>", True),
        (b"<HTML>", True),
        (b"<p>hi", True),
        (b"<!-- c -->", True),
        (b"<b ", True),
        (b"<br>", True),
        (b"<pre>", False),
        (b"<htm", None),
        (b'{"a": 1}', False),
        (b"\xef\xbb\xbf<html>", False),  # a BOM first: text to the sniffer
    ],
)
def test_sniffing_follows_the_whatwg_html_signatures(head: bytes, verdict: bool | None) -> None:
    assert sniffs_as_html(head, complete=False) is verdict


# -- tags a <select> makes live ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        f'<select><xmp><script src="{TRACKER}"></script></xmp></select>',
        f'<select><plaintext><script src="{TRACKER}"></script>',
        f'<select><style><script src="{TRACKER}"></script></style></select>',
    ],
)
def test_a_script_a_select_makes_live_is_held_back(gateway: str, html: str) -> None:
    text = httpx.get(gateway + "/markup", params={"html": html}, timeout=WAIT_SECONDS).text
    assert f'<script src="{TRACKER}"' not in text
    assert f'data-cg-src="{TRACKER}"' in text


def test_a_relative_script_under_a_tracker_base_is_held_back(gateway: str) -> None:
    html = '<html><head><base href="https://www.googletagmanager.com/gtag/"><script src="js?id=G-1"></script>'
    text = httpx.get(gateway + "/markup", params={"html": html}, timeout=WAIT_SECONDS).text
    assert '<script src="js?id=G-1">' not in text
    assert 'data-cg-src="js?id=G-1"' in text


# -- SVG and XML documents that run scripts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "media_type"),
    [
        ("svg-script", "image/svg+xml"),
        ("svg-inline", "image/svg+xml"),
        ("svg-onload", "image/svg+xml"),
        ("xml-xhtml-script", "text/xml"),
        ("xml-xhtml-script", "application/atom+xml"),
    ],
)
def test_an_xml_document_that_runs_scripts_is_refused_when_opened_as_a_page(
    gateway: str, doc: str, media_type: str
) -> None:
    before = metrics.value("html_refused_total", reason="scripted_xml")
    for dest in ("document", "iframe", None):  # no Sec-Fetch-Dest: an older browser, a page all the same
        headers = {"sec-fetch-dest": dest} if dest else {}
        response = httpx.get(
            gateway + "/xml", params={"doc": doc, "type": media_type}, headers=headers, timeout=WAIT_SECONDS
        )
        assert response.status_code == 502 and response.json()["error"]["code"] == "unreadable_page"
        assert b"googletagmanager" not in response.content and b"facebook" not in response.content
    assert metrics.value("html_refused_total", reason="scripted_xml") == before + 3


def test_a_compressed_svg_is_read_decoded(gateway: str) -> None:
    scripted = httpx.get(gateway + "/xml", params={"doc": "svg-script", "gzip": "1"}, timeout=WAIT_SECONDS)
    assert scripted.status_code == 502
    icon = httpx.get(gateway + "/xml", params={"doc": "svg-icon", "gzip": "1"}, timeout=WAIT_SECONDS)
    assert icon.status_code == 200 and icon.headers["content-encoding"] == "gzip"
    assert icon.text == DOCUMENTS["svg-icon"]  # decoded by the client: the site's bytes, untouched


@pytest.mark.parametrize("doc", ["svg-icon", "xml-data", "xml-feed-about-scripts", "svg-illustrator"])
def test_a_scriptless_document_passes_untouched(gateway: str, doc: str) -> None:
    media_type = "image/svg+xml" if doc.startswith("svg") else "application/rss+xml"
    response = httpx.get(gateway + "/xml", params={"doc": doc, "type": media_type}, timeout=WAIT_SECONDS)
    assert response.status_code == 200 and response.text == DOCUMENTS[doc]


#: ways to run a script that a search for "<script" would miss, or that hide it from a naive reader
HIDDEN_SCRIPTS = {
    "entity-markup": "<!DOCTYPE svg [<!ENTITY s \"<script href='https://t.example/x.js'/>\">]><svg>&s;</svg>",
    "entity-reference-markup": '<!DOCTYPE svg [<!ENTITY s "&#60;script/&#62;">]><svg>&s;</svg>',
    "entity-javascript-url": '<!DOCTYPE svg [<!ENTITY j "javascript:go()">]><svg><a href="&j;">x</a></svg>',
    "encoded-javascript-url": '<svg xmlns:x="http://www.w3.org/1999/xlink"><a x:href="&#106;ava\tscript:go()"/></svg>',
    "xslt": '<?xml-stylesheet type="text/xsl" href="/page.xsl"?><data/>',
    "event-attribute-prefixed": '<svg xmlns:e="http://www.w3.org/2000/svg"><rect e:onclick="go()"/></svg>',
    "script-after-quoted-gt": '<svg><rect title="a > b"/><script>go()</script></svg>',
}


@pytest.mark.parametrize("doc", sorted(HIDDEN_SCRIPTS))
@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_a_hidden_script_is_found_at_every_chunking(doc: str, piece: int) -> None:
    body = HIDDEN_SCRIPTS[doc].encode()
    scan = ScriptScan([], 1 << 20)
    with pytest.raises(UndecodableBody):
        for start in range(0, len(body), piece):
            scan.feed(body[start : start + piece])
        scan.finish()


@pytest.mark.parametrize("doc", ["xml-feed-about-scripts", "svg-illustrator", "svg-icon"])
@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_a_scriptless_document_reads_as_scriptless_at_every_chunking(doc: str, piece: int) -> None:
    body = DOCUMENTS[doc].encode()
    scan = ScriptScan([], 1 << 20)
    for start in range(0, len(body), piece):
        scan.feed(body[start : start + piece])
    scan.finish()  # nothing raised: the document passes


def test_a_tag_too_long_to_read_is_refused() -> None:
    scan = ScriptScan([], 1 << 30)
    with pytest.raises(UndecodableBody):
        scan.feed(b'<svg><rect title="' + b"x" * (MAX_CONSTRUCT_BYTES + 1))


def test_an_svg_shown_as_an_image_runs_no_script_and_passes_untouched(gateway: str) -> None:
    response = httpx.get(
        gateway + "/xml", params={"doc": "svg-script"}, headers={"sec-fetch-dest": "image"}, timeout=WAIT_SECONDS
    )
    assert response.status_code == 200 and response.text == DOCUMENTS["svg-script"]


def test_a_script_late_in_a_streamed_svg_breaks_the_connection_before_it_goes_out(gateway: str) -> None:
    received = b""
    with httpx.Client(timeout=WAIT_SECONDS) as client, client.stream("GET", gateway + "/long-xml") as response:
        assert response.status_code == 200  # the scriptless start went out as it came
        with pytest.raises(httpx.HTTPError):  # then the connection breaks off: no well-formed end
            for piece in response.iter_raw():
                received += piece
    assert received.startswith(b"<svg") and TRACKER.encode() not in received


# -- Early Hints ---------------------------------------------------------------------------------------------


def test_an_upstreams_early_hints_to_trackers_never_reach_the_visitor(config: Config) -> None:
    """A real upstream answers 103 Early Hints with a preload of a tracker, then the page: the visitor gets
    the rewritten page and neither the hint nor its Link (the proxy passes no interim answer on)."""
    import socket
    import threading

    page = PAGE.encode()

    def answer(listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: " + GTM_PRELOAD.encode() + b"\r\n\r\n")
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: "
                    + str(len(page)).encode()
                    + b"\r\n\r\n"
                    + page
                )

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        threading.Thread(target=answer, args=(listener,), daemon=True).start()
        upstream = f"http://127.0.0.1:{listener.getsockname()[1]}"
        plain = replace(config, gateway=replace(config.gateway, compress=False))
        with (
            ServerThread(proxy_app(upstream, plain)) as gateway,
            socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_SECONDS) as visitor,
        ):
            visitor.sendall(b"GET / HTTP/1.1\r\nHost: shop.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := visitor.recv(65536):
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")  # no interim 103 before it
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"googletagmanager" not in head.lower() and b"link:" not in head.lower()
    _assert_rewritten(body.decode())  # the page's own tracker tag held back as usual
