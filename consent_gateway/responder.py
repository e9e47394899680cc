"""The per-request `send` wrapper: what leaves the site passes through here on its way to the visitor.

`http.response.start` is held until its headers are fixed: Set-Cookie headers the decision does not allow
are dropped, and an HTML response loses its Content-Length (the rewriter changes it) and gains
`Vary: Cookie` and `Cache-Control: private` (or, for pages every visitor shares, keeps the site's caching: see
shared_pages.py). HTML body chunks then stream through the holdback rewriter one
by one — never buffered whole. Everything else passes untouched. Compressed HTML is decoded (bounded, see
codings.py) and, when the visitor accepts it, compressed again on its way out (br or gzip, chunk by chunk);
one the gateway cannot decode is answered 502, never passed on with its trackers live.

A HEAD request reaches the app as a GET (see middleware.py): only the page's body says what a GET's headers
would (its <meta> charset, whether a body without a type is HTML, an exact length), so the response goes
through every step above and its body is dropped here, the app stopped after the headers (`HeadAnswered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections.abc import Awaitable, Mapping
from typing import Protocol

from . import metrics, scripted_xml
from ._types import Message, Scope, Send
from .charsets import Transcoder, header_encoding
from .codings import BodyDecoder, BodyEncoder, UndecodableBody, content_codings, visitor_encoding
from .cookies import CookieFilter
from .decision import Decision
from .mimesniff import browser_content_type, is_unknown_type, parse_mime_type, sniffs_as_html
from .multipart import PartHeaders, boundary_of
from .responses import error_response
from .scripted_xml import ScriptScan, is_scriptable_xml, rendered_as_document
from .shared_pages import SharedPages

logger = logging.getLogger("consent_gateway.responder")

_HTML_TYPES = frozenset({b"text/html", b"application/xhtml+xml"})
#: charsets the rewriter reads as bytes (what `_state_charset` may put in a Content-Type)
_ASCII_COMPATIBLE = re.compile(
    rb"^(utf-?8|us-ascii|ascii|iso-?8859-\d+|latin-?1|windows-125\d|cp125\d|koi8-[ru]|shift_jis|euc-jp|euc-kr|gb2312|gbk|gb18030|big5)$"
)
_NONCE = re.compile(rb"'nonce-([A-Za-z0-9+/=_-]+)'")
#: Headers that describe the original HTML bytes and would lie about the rewritten ones.
_DROPPED_FOR_HTML = frozenset({b"content-length", b"content-encoding", b"etag", b"last-modified", b"accept-ranges"})
#: a CDN obeys these before Cache-Control: a page rewritten for one visitor must not go out with them
_CDN_CACHE_HEADERS = frozenset({b"surrogate-control", b"cdn-cache-control", b"cloudflare-cdn-cache-control"})
#: what an HTML page's headers lose in one pass: the above, and Vary and Cache-Control (added back merged)
_REPLACED_FOR_SHARED_PAGE = _DROPPED_FOR_HTML | {b"cache-control", b"vary"}
_REPLACED_FOR_OWN_PAGE = _REPLACED_FOR_SHARED_PAGE | _CDN_CACHE_HEADERS
_NO_BODY_STATUSES = frozenset({204, 304})
_MULTIPART_REPLACE = b"multipart/x-mixed-replace"
#: page headers a browser fetches from before it reads the body (see page_headers.py)
_FETCHING_HEADERS = frozenset({b"link", b"refresh"})
#: ASGI extensions that send a body as a file; passed on untouched unless the body is HTML.
_FILE_SENDS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})
_FILE_CHUNK = 64 * 1024


class HeadAnswered(Exception):
    """Raised into the app once a HEAD answer is complete: its headers are out, the body it still sends goes
    nowhere (the middleware swallows this; an upstream response is closed instead of read to its end)."""


class PageRewriter(Protocol):
    """One page's streaming rewriter: `feed` each chunk, `close` at the end; counts what it held back."""

    @property
    def held_back(self) -> Mapping[str, int]: ...
    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...


class RewriterFactory(Protocol):
    """Makes a page's rewriter for one visitor, and disarms what a failed rewriter could not read."""

    #: a compressed page decoding past this many bytes is refused (502), not decoded further
    max_decoded_bytes: int
    #: rewritten pages go back compressed (br or gzip) to visitors who accept it
    compress: bool

    def new(self, scope: Scope, decision: Decision, nonce: str | None) -> PageRewriter: ...
    def make_inert(self, chunk: bytes) -> bytes: ...
    def hold_back_links(self, value: bytes, decision: Decision) -> bytes | None:
        """A page's Link header less what the decision holds back (browsers fetch preloads before the body)."""

    def holds_back_refresh(self, value: bytes, decision: Decision) -> bool:
        """Whether a page's Refresh header navigates to a URL the decision holds back."""


class PagePolicies(Protocol):
    """Extra response headers for an HTML page, by decision (the CSP backstop, see csp.py)."""

    def headers(self, scope: Scope, decision: Decision) -> tuple[tuple[bytes, bytes], ...]: ...


#: what a response's type asks of the responder: nothing, a rewrite, sniffing, or a read of its parts or XML
_OTHER, _HTML, _UNKNOWN, _PARTS, _XML = range(5)


def _kind_of(mime: tuple[bytes, bytes | None] | None) -> int:
    if mime is None:
        return _UNKNOWN
    essence = mime[0]
    if essence in _HTML_TYPES:
        return _HTML
    if is_unknown_type(essence):
        return _UNKNOWN
    if essence == _MULTIPART_REPLACE:
        return _PARTS
    return _XML if is_scriptable_xml(essence) else _OTHER


@functools.lru_cache(maxsize=256)  # every response has one; a site sends a handful of distinct values
def _read_type(value: bytes) -> tuple[tuple[bytes, bytes | None] | None, int]:
    """A single Content-Type line as a browser reads it, and its kind."""
    mime = browser_content_type((value,))
    return mime, _kind_of(mime)


def csp_nonce(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"content-security-policy":
            found = _NONCE.search(value)
            if found:
                return found.group(1).decode("ascii")
    return None


def _header_value(headers: list[tuple[bytes, bytes]], name: bytes, default: bytes) -> bytes:
    """The last value of a header (as the loop it replaces kept), or `default`."""
    found = default
    for key, value in headers:
        if key == name:
            found = value
    return found


def _state_charset(headers: list[tuple[bytes, bytes]], charset: str | None) -> None:
    """Add the page's own <meta> charset to a Content-Type that names none: a browser reads the <meta> only
    in the first KiB, which the held-back attributes and the banner block may push it out of. Only an
    ASCII-compatible charset (what the rewriter reads) is stated; the header then says what the page says."""
    if not charset or not _ASCII_COMPATIBLE.match(charset.encode("ascii")):
        return
    for index, (key, value) in enumerate(headers):
        if key == b"content-type":
            headers[index] = (key, value.rstrip(b"; \t") + b"; charset=" + charset.encode("ascii"))
            return


@functools.lru_cache(maxsize=256)  # every page merges the same few values (b"Cookie" + Accept-Encoding)
def _merge_vary(value: bytes, name: bytes = b"Cookie") -> bytes:
    parts = [p.strip() for p in value.split(b",") if p.strip()]
    if any(p.lower() in (name.lower(), b"*") for p in parts):
        return value
    return b", ".join([*parts, name])


@functools.lru_cache(maxsize=256)  # every page; a site sends a handful of distinct values
def _private_cache_control(value: bytes | None) -> bytes:
    """Keep the site's directives, minus anything that lets a shared cache store the page."""
    if not value:
        return b"private"
    kept = [
        p.strip()
        for p in value.split(b",")
        if p.strip() and p.strip().lower() != b"public" and not p.strip().lower().startswith(b"s-maxage")
    ]
    if not any(p.lower() in (b"private", b"no-store") for p in kept):
        kept.insert(0, b"private")
    return b", ".join(kept)


def kept_private(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` for a response meant for one visitor (it sets their cookies): no shared cache may keep it."""
    cache_control: bytes | None = None
    kept: list[tuple[bytes, bytes]] = []
    for key, value in headers:
        if key == b"cache-control":
            cache_control = value
        elif key not in _CDN_CACHE_HEADERS:
            kept.append((key, value))
    kept.append((b"cache-control", _private_cache_control(cache_control)))
    return kept


class Responder:
    """Wraps one request's `send`. Created per request; keeps only what the stream needs."""

    __slots__ = (
        "scope",
        "decision",
        "_send",
        "_downstream",
        "_cookie_filter",
        "_rewriters",
        "_policies",
        "_shared",
        "_rewriter",
        "_decoder",
        "_transcoder",
        "_encoder",
        "_sniffed",
        "_parts",
        "_xml",
        "_refusal",
        "_held_start",
        "_skip_body",
        "_failed",
        "_charset_stated",
        "_done",
        "_plain",
        "head_answered",
    )

    def __init__(
        self,
        scope: Scope,
        decision: Decision,
        send: Send,
        cookie_filter: CookieFilter,
        rewriters: RewriterFactory,
        policies: PagePolicies | None = None,
        shared: SharedPages | None = None,
    ) -> None:
        self.scope = scope
        self.decision = decision
        self._send = self._send_head if scope.get("method") == "HEAD" else send
        self._downstream = send
        self._cookie_filter = cookie_filter
        self._rewriters = rewriters
        self._policies = policies
        #: `[gateway] html_cache = "shared"`: the page is rewritten as for a visitor who chose nothing
        self._shared = shared
        self._rewriter: PageRewriter | None = None
        self._decoder: BodyDecoder | None = None
        self._transcoder: Transcoder | None = None
        self._encoder: BodyEncoder | None = None
        #: a body sent without a Content-Type, held until its first bytes tell whether a browser reads HTML
        self._sniffed: list[bytes] | None = None
        #: a multipart/x-mixed-replace stream, whose part headers are read as they pass (see multipart.py)
        self._parts: PartHeaders | None = None
        #: an SVG or XML document opened as a page, read as it passes for scripts (see scripted_xml.py)
        self._xml: ScriptScan | None = None
        #: an HTML body this gateway cannot read: answered 502 instead of the site's response
        self._refusal: UndecodableBody | None = None
        #: an HTML response's start, sent with the first body bytes out: a page sent in one piece then gets
        #: an exact Content-Length instead of chunked encoding, and one that cannot be decoded a clean 502
        self._held_start: Message | None = None
        self._skip_body = False
        self._failed = False
        #: whether the site's Content-Type names a charset (else the page's <meta> one is stated there)
        self._charset_stated = True
        #: the answer is complete (a 502 went out instead): what the app still sends goes nowhere
        self._done = False
        #: the start went out as the site sent it and nothing reads the body (assets, APIs): what follows
        #: passes straight on
        self._plain = False
        #: a HEAD request got its headers and its end: the app was stopped (see `HeadAnswered`)
        self.head_answered = False

    def send(self, message: Message) -> Awaitable[None]:
        """The app's `send`. Once a response passes untouched, its messages go straight to the server's
        `send` (no coroutine of this class in between: one frame less per message)."""
        if self._plain:
            return self._send(message)
        return self._send_read(message)

    async def _send_read(self, message: Message) -> None:
        if self._done:
            if self.head_answered:
                raise HeadAnswered("a HEAD answer has no body")
            return
        kind = message["type"]
        if kind == "http.response.early_hint":
            await self._early_hint(message)
        elif kind == "http.response.start":
            message = self._start(message)
            if self._refusal is not None:
                await self._refuse(self._refusal)
            elif (
                (self._rewriter is not None and not self._skip_body)
                or self._sniffed is not None
                or self._parts is not None
                or self._xml is not None
            ):
                self._held_start = message
            else:
                await self._send(message)
                self._plain = self._rewriter is None and not self._done
        elif self._sniffed is not None:
            await self._sniff(message)
        elif kind == "http.response.body" and self._rewriter is not None:
            await self._body(message, self._rewriter)
        elif self._parts is not None:
            await self._part_body(message, self._parts)
        elif self._xml is not None:
            await self._xml_body(message, self._xml)
        elif kind in _FILE_SENDS and self._rewriter is not None:
            await self._file_body(message, self._rewriter)
        else:
            await self._send(message)

    async def _early_hint(self, message: Message) -> None:
        """An Early Hints (103) answer (the ASGI extension): its Link values less those the decision holds
        back, as the page's own Link header (a browser preloads or connects on them before any page); none
        left, no hint. A HEAD answer gets none."""
        if self.scope.get("method") == "HEAD":
            return
        decision = self.decision if self._shared is None else self._shared.page_decision(self.decision)
        kept = [
            left
            for link in message.get("links", ())
            if (left := self._rewriters.hold_back_links(bytes(link), decision)) is not None
        ]
        if kept:
            await self._send({**message, "links": kept})

    async def _send_head(self, message: Message) -> None:
        """The visitor's `send` for a HEAD request: the headers as a GET gets them, then at once the end (an
        endless stream's HEAD does not wait for its first event); what the app sends next stops it."""
        if message["type"] != "http.response.start":
            raise HeadAnswered("a HEAD answer has no body")
        await self._downstream(message)
        self._done = self.head_answered = True
        await self._downstream({"type": "http.response.body", "body": b"", "more_body": False})

    # -- headers

    def _start(self, message: Message) -> Message:
        has_cookies = nosniff = False
        content_types: list[bytes] = []
        for key, value in message.get("headers", ()):
            if key == b"set-cookie":
                has_cookies = True
            elif key == b"content-type":
                content_types.append(value)
            elif key == b"x-content-type-options":
                nosniff = nosniff or value.strip().lower() == b"nosniff"
        # the type as a browser reads it: several lines or a list, the last valid type wins
        if len(content_types) == 1:
            mime, kind = _read_type(content_types[0])
        else:
            mime = browser_content_type(content_types) if content_types else None
            kind = _kind_of(mime)
        is_html = kind == _HTML
        # no usable type: a browser sniffs the first bytes, and runs what it reads as HTML
        sniff = kind == _UNKNOWN and not nosniff and self._has_body(message)
        if kind == _PARTS and self._has_body(message):
            self._read_parts(message, content_types[-1])
        elif kind == _XML and self._has_body(message):
            self._read_xml(message)
        if not (has_cookies or is_html or sniff):
            return message  # the common case for assets and APIs: nothing to change
        headers: list[tuple[bytes, bytes]] = list(message["headers"])
        if has_cookies:
            headers = self._cookie_filter.filter(headers, self.decision)
        if is_html:
            assert mime is not None
            content_type = content_types[0].lower()
            if len(content_types) > 1 or b"," in content_type:
                # one line goes out, saying what the page was read and rewritten as
                content_type = mime[0] + (b"; charset=" + mime[1] if mime[1] else b"")
                headers = [(k, v) for k, v in headers if k != b"content-type"] + [(b"content-type", content_type)]
            headers = self._prepare_html(message, headers, content_type, has_cookies)
            if self._policies is not None:
                # next to the site's own policy headers, which stay as they are: browsers apply them all
                policed = self.decision if self._shared is None else self._shared.policy_decision(self.decision)
                headers.extend(self._policies.headers(self.scope, policed))
        elif sniff:
            self._sniffed = []
        return {**message, "headers": headers}

    def _read_parts(self, message: Message, content_type: bytes) -> None:
        """A stream of parts each shown as it comes: passed on while no part could be a page."""
        boundary = boundary_of(content_type)
        if boundary is None:
            self._refusal = UndecodableBody("multipart_page", "a multipart/x-mixed-replace stream without boundary")
        elif content_codings(_header_value(list(message.get("headers", ())), b"content-encoding", b"")):
            self._refusal = UndecodableBody("multipart_page", "a compressed multipart/x-mixed-replace stream")
        else:
            self._parts = PartHeaders(boundary)

    def _read_xml(self, message: Message) -> None:
        """An SVG or XML document: read for scripts when the visitor's browser opens it as a page."""
        if not rendered_as_document(dict(self.scope["headers"])):
            return  # an image, a style, data for a script: a browser runs no script of it
        coding = _header_value(list(message.get("headers", ())), b"content-encoding", b"")
        try:
            self._xml = ScriptScan(content_codings(coding), self._rewriters.max_decoded_bytes)
        except UndecodableBody as exc:  # a coding this gateway cannot decode
            self._refusal = UndecodableBody(scripted_xml.REASON, str(exc))

    async def _xml_body(self, message: Message, scan: ScriptScan) -> None:
        try:
            if message["type"] == "http.response.pathsend":
                limit = self._rewriters.max_decoded_bytes
                with open(message["path"], "rb") as handle:
                    document = handle.read(limit + 1)
                if len(document) > limit:
                    raise UndecodableBody(scripted_xml.REASON, "an XML document file past the size bound")
                scan.feed(document)
                scan.finish()
            elif message["type"] != "http.response.body":
                raise UndecodableBody(scripted_xml.REASON, "an XML document sent as a file descriptor")
            else:
                scan.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    scan.finish()
        except UndecodableBody as exc:
            await self._unreadable(UndecodableBody(scripted_xml.REASON, str(exc)), "an XML document")
            return
        await self._pass_on(message)

    async def _part_body(self, message: Message, parts: PartHeaders) -> None:
        try:
            if message["type"] != "http.response.body":  # a file: not read here, so not passed on
                raise UndecodableBody("multipart_page", "a multipart/x-mixed-replace stream sent as a file")
            parts.feed(message.get("body", b""))
        except UndecodableBody as exc:
            await self._unreadable(exc, "a multipart stream")
            return
        await self._pass_on(message)

    async def _pass_on(self, message: Message) -> None:
        """A body message the checks let through, after the response's start when it is still held."""
        start = self._held_start
        if start is not None:
            self._held_start = None
            await self._send(start)
        await self._send(message)

    def _has_body(self, message: Message) -> bool:
        # HEAD too: its body is read as a GET's would be, then dropped (`_send_head`)
        return message.get("status", 200) not in _NO_BODY_STATUSES

    def _prepare_html(
        self, message: Message, headers: list[tuple[bytes, bytes]], content_type: bytes, has_cookies: bool
    ) -> list[tuple[bytes, bytes]]:
        # the charset parameter as a browser reads it (a "charset=" inside another parameter is none)
        parsed = parse_mime_type(content_type)
        charset = parsed[1] if parsed is not None else None
        self._charset_stated = charset is not None
        if not self._has_body(message):
            self._skip_body = True
        codings = content_codings(_header_value(headers, b"content-encoding", b""))
        if codings and not self._skip_body:
            try:
                self._decoder = BodyDecoder(codings, self._rewriters.max_decoded_bytes)
            except UndecodableBody as exc:
                self._refusal = exc  # never passed on as it is: its trackers would be live, with no banner
                return headers
        vary = _header_value(headers, b"vary", b"")
        cache_control: bytes | None = _header_value(headers, b"cache-control", b"") or None
        shared = self._shared
        replaced = _REPLACED_FOR_OWN_PAGE if shared is None else _REPLACED_FOR_SHARED_PAGE
        fixed = [(k, v) for k, v in headers if k not in replaced]
        page_decision = self.decision
        if shared is None:  # the page is this visitor's own
            vary = _merge_vary(vary) if vary else b"Cookie"
            cache_control = _private_cache_control(cache_control)
        else:  # the same bytes for everyone: the site's caching stands, unless a header is this visitor's
            page_decision = shared.page_decision(self.decision)
            synced = shared.sync(self.decision, self.scope)
            fixed += synced
            if has_cookies or synced:
                fixed = [(k, v) for k, v in fixed if k not in _CDN_CACHE_HEADERS]
                cache_control = _private_cache_control(cache_control)
        if any(k in _FETCHING_HEADERS for k, _ in fixed):
            fixed = self._held_back_headers(fixed, page_decision)
        if self._rewriters.compress and not self._skip_body:
            coding = visitor_encoding(_scope_header(self.scope, b"accept-encoding"))
            if coding is not None:
                self._encoder = BodyEncoder(coding)
                fixed.append((b"content-encoding", coding.encode("ascii")))
            vary = _merge_vary(vary, b"Accept-Encoding")
        if vary:
            fixed.append((b"vary", vary))
        if cache_control is not None:
            fixed.append((b"cache-control", cache_control))
        # a BOM, else the header's charset: UTF-16 is rewritten through UTF-8
        self._transcoder = Transcoder(header_encoding(b"charset=" + charset) if charset else None)
        self._rewriter = self._rewriters.new(self.scope, page_decision, csp_nonce(headers))
        return fixed

    def _held_back_headers(self, headers: list[tuple[bytes, bytes]], decision: Decision) -> list[tuple[bytes, bytes]]:
        """Link and Refresh less what the decision holds back: a browser acts on them before the body."""
        kept: list[tuple[bytes, bytes]] = []
        for key, value in headers:
            if key == b"link":
                left = self._rewriters.hold_back_links(value, decision)
                if left is not None:
                    kept.append((key, left))
            elif key == b"refresh":
                if not self._rewriters.holds_back_refresh(value, decision):
                    kept.append((key, value))
            else:
                kept.append((key, value))
        return kept

    async def send_held_start(self) -> None:
        """The app failed after starting an HTML response whose start is still held (the rewriter had not
        read the first KiB): send it, so the visitor sees the page break off, not the server's error page."""
        start = self._held_start
        if start is not None:
            self._held_start = None
            with contextlib.suppress(Exception):  # the visitor may be gone already
                await self._send(start)

    async def _sniff(self, message: Message) -> None:
        """Hold a body without a Content-Type until its first bytes decide: HTML is rewritten like any page
        (and typed text/html), anything else goes on as it came."""
        sniffed = self._sniffed
        start = self._held_start
        assert sniffed is not None and start is not None
        kind = message["type"]
        more = kind != "http.response.body" or bool(message.get("more_body", False))
        if kind == "http.response.body":
            sniffed.append(message.get("body", b""))
            head = self._sniff_head(start, sniffed)
            verdict = False if head is None else sniffs_as_html(head, complete=not more)
            if verdict is None:
                return
        else:
            verdict = True  # a file sent whole, unseen: read it as a page rather than risk a live one
        self._sniffed = None
        held = {"type": "http.response.body", "body": b"".join(sniffed), "more_body": more}
        if not verdict:
            self._held_start = None
            await self._send(start)
            await self._send(held)
            return
        metrics.inc("sniffed_html_total")
        # has_cookies: its Set-Cookie headers may be filtered out already; an untyped page is rare, kept private
        prepared = self._prepare_html(start, list(start["headers"]), b"text/html", has_cookies=True)
        headers = [*((k, v) for k, v in prepared if k != b"content-type"), (b"content-type", b"text/html")]
        self._held_start = {**start, "headers": headers}
        if self._refusal is not None:
            await self._refuse(self._refusal)
            return
        assert self._rewriter is not None
        await self._body(held, self._rewriter)
        if kind != "http.response.body":
            await self.send(message)

    def _sniff_head(self, start: Message, sniffed: list[bytes]) -> bytes | None:
        """The first decoded bytes held so far; None for a body the gateway cannot decode, which a browser
        cannot render either: it is not HTML to one."""
        head = b"".join(sniffed)
        codings = content_codings(_header_value(start["headers"], b"content-encoding", b""))
        if not codings:
            return head
        try:
            return BodyDecoder(codings, self._rewriters.max_decoded_bytes).decode(head)
        except UndecodableBody:
            return None

    async def _unreadable(self, exc: UndecodableBody, what: str) -> None:
        """A body the gateway cannot read: a clean 502 while nothing is out; once part of it is out, the
        connection is dropped (``exc`` raised again) rather than the response ended as if complete."""
        if self._held_start is not None:
            await self._refuse(exc)
            return
        self._done = True
        metrics.inc("html_refused_total", reason=exc.reason)
        logger.warning("dropped %s of %s: %s", what, self.scope.get("path"), exc)
        raise exc

    async def _refuse(self, refusal: UndecodableBody) -> None:
        """A clean 502 in place of an HTML page the gateway cannot read (the site's answer is dropped)."""
        self._done = True
        self._held_start = None
        metrics.inc("html_refused_total", reason=refusal.reason)
        logger.warning("refused an HTML response of %s: %s", self.scope.get("path"), refusal)
        text = "The site sent a page the consent gateway cannot read."
        answer = error_response(502, "unreadable_page", text, {"cache-control": "no-store"})
        await answer(self.scope, _no_receive, self._send)

    # -- body

    async def _file_body(self, message: Message, rewriter: PageRewriter) -> None:
        """An HTML page the app sends as a file (`pathsend`, `zerocopysend`) is read here and rewritten like
        any body: passed on as a file, it would reach the visitor with every tracker live."""
        if message["type"] == "http.response.pathsend":
            with open(message["path"], "rb") as handle:
                await self._file_chunks(rewriter, handle.fileno(), 0, None, more=False)
            return
        offset = message.get("offset")
        await self._file_chunks(
            rewriter, message["file"], offset, message.get("count"), more=bool(message.get("more_body", False))
        )

    async def _file_chunks(
        self, rewriter: PageRewriter, fd: int, offset: int | None, count: int | None, *, more: bool
    ) -> None:
        remaining = count if count is not None else -1
        position = offset
        while remaining != 0 and not self._done:
            size = _FILE_CHUNK if remaining < 0 else min(_FILE_CHUNK, remaining)
            if position is None:
                chunk = await asyncio.to_thread(os.read, fd, size)
            else:
                chunk = await asyncio.to_thread(os.pread, fd, size, position)
                position += len(chunk)
            if not chunk:
                break
            remaining -= len(chunk) if remaining > 0 else 0
            await self._body({"type": "http.response.body", "body": chunk, "more_body": True}, rewriter)
        await self._body({"type": "http.response.body", "body": b"", "more_body": more}, rewriter)

    async def _body(self, message: Message, rewriter: PageRewriter) -> None:
        if self._done:
            return
        more = message.get("more_body", False)
        if self._skip_body:
            await self._send(message)
            return
        try:
            out = self._rewrite(rewriter, message.get("body", b""), final=not more)
        except UndecodableBody as exc:
            await self._unreadable(exc, "the rest of an HTML response")
            return
        start = self._held_start
        if start is not None and (out or not more):  # held while the rewriter still reads the first KiB
            self._held_start = None
            if not self._charset_stated:
                _state_charset(start["headers"], getattr(rewriter, "declared_charset", None))
            if not more:
                start["headers"].append((b"content-length", str(len(out)).encode("ascii")))
            await self._send(start)
        if out or not more:
            await self._send({"type": "http.response.body", "body": out, "more_body": more})

    def _rewrite(self, rewriter: PageRewriter, chunk: bytes, *, final: bool) -> bytes:
        if self._decoder is not None:
            chunk = self._decoder.decode(chunk)
            if final:
                chunk += self._decoder.finish()
        transcoder = self._transcoder
        if transcoder is not None:
            chunk = transcoder.to_utf8(chunk, final=final)
        if self._failed:
            out = self._rewriters.make_inert(chunk)
        else:
            try:
                out = rewriter.feed(chunk) if chunk else b""
                if final:
                    out += rewriter.close()
                    if rewriter.held_back:
                        metrics.inc_each("held_back_tags_total", "vendor", rewriter.held_back)
            except Exception:
                # The page must still arrive and no tracker may slip through: from here on every tag that
                # could load something is made inert.
                self._failed = True
                logger.exception("HTML rewrite failed; the rest of the page is made inert")
                metrics.inc("rewrite_bailouts_total", reason="error")
                out = self._rewriters.make_inert(chunk)
        if transcoder is not None:
            out = transcoder.from_utf8(out, final=final)
        if self._encoder is not None:
            return self._encoder.finish(out) if final else self._encoder.encode(out)
        return out


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _scope_header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
