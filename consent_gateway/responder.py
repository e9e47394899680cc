"""The per-request `send` wrapper: what leaves the site passes through here on its way to the visitor.

`http.response.start` is held until its headers are fixed: Set-Cookie headers the decision does not allow
are dropped, and an HTML response loses its Content-Length (the rewriter changes it) and gains
`Vary: Cookie` and `Cache-Control: private`. HTML body chunks then stream through the holdback rewriter one
by one — never buffered whole. Everything else passes untouched. Compressed HTML is decoded and sent
identity-encoded: compress at the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

from . import metrics
from ._types import Message, Scope, Send
from .cookies import CookieFilter
from .decision import Decision

logger = logging.getLogger("consent_gateway.responder")

_HTML_TYPES = (b"text/html", b"application/xhtml+xml")
#: Charsets that keep ASCII bytes as ASCII, so tags can be found without decoding.
_ASCII_COMPATIBLE = re.compile(
    rb"^(utf-?8|us-ascii|ascii|iso-?8859-\d+|latin-?1|windows-125\d|cp125\d|koi8-[ru]|shift_jis|euc-jp|euc-kr|gb2312|gbk|gb18030|big5)$"
)
_NONCE = re.compile(rb"'nonce-([A-Za-z0-9+/=_-]+)'")
_CHARSET = re.compile(rb"charset=\"?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
#: Headers that describe the original HTML bytes and would lie about the rewritten ones.
_DROPPED_FOR_HTML = frozenset({b"content-length", b"content-encoding", b"etag", b"last-modified", b"accept-ranges"})
_NO_BODY_STATUSES = frozenset({204, 304})
#: ASGI extensions that send a body as a file; passed on untouched unless the body is HTML.
_FILE_SENDS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})
_FILE_CHUNK = 64 * 1024


class _Decoder(Protocol):
    def decompress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _BrotliDecoder:
    def __init__(self) -> None:
        import brotli

        self._decoder = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        return bytes(self._decoder.process(data))

    def flush(self) -> bytes:
        return b""


class PageRewriter(Protocol):
    """One page's streaming rewriter: `feed` each chunk, `close` at the end; counts what it held back."""

    @property
    def held_back(self) -> Mapping[str, int]: ...
    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...


class RewriterFactory(Protocol):
    """Makes a page's rewriter for one visitor, and disarms what a failed rewriter could not read."""

    def new(self, scope: Scope, decision: Decision, nonce: str | None) -> PageRewriter: ...
    def make_inert(self, chunk: bytes) -> bytes: ...


class _RawDeflateFallback:
    """`Content-Encoding: deflate` is zlib-wrapped by the standard, but some servers send raw deflate."""

    def __init__(self) -> None:
        self._decoder: Any = zlib.decompressobj()
        self._started = False

    def decompress(self, data: bytes) -> bytes:
        if not self._started and data:
            self._started = True
            try:
                return bytes(self._decoder.decompress(data))
            except zlib.error:
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        return bytes(self._decoder.decompress(data))

    def flush(self) -> bytes:
        return bytes(self._decoder.flush())


def _decoder_for(encoding: bytes) -> _Decoder | None:
    """A decoder for an HTML body's Content-Encoding; None when it is one the gateway cannot read."""
    if encoding in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == b"deflate":
        return _RawDeflateFallback()
    if encoding == b"br":
        return _BrotliDecoder()
    return None


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


def _merge_vary(value: bytes) -> bytes:
    parts = [p.strip() for p in value.split(b",") if p.strip()]
    if any(p.lower() in (b"cookie", b"*") for p in parts):
        return value
    return b", ".join([*parts, b"Cookie"])


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


class Responder:
    """Wraps one request's `send`. Created per request; keeps only what the stream needs."""

    __slots__ = (
        "scope",
        "decision",
        "_send",
        "_cookie_filter",
        "_rewriters",
        "_rewriter",
        "_decoder",
        "_held_start",
        "_skip_body",
        "_failed",
        "_charset_stated",
    )

    def __init__(
        self, scope: Scope, decision: Decision, send: Send, cookie_filter: CookieFilter, rewriters: RewriterFactory
    ) -> None:
        self.scope = scope
        self.decision = decision
        self._send = send
        self._cookie_filter = cookie_filter
        self._rewriters = rewriters
        self._rewriter: PageRewriter | None = None
        self._decoder: _Decoder | None = None
        #: an HTML response's start, sent with the first body chunk: a page sent in one piece then gets
        #: an exact Content-Length instead of chunked encoding
        self._held_start: Message | None = None
        self._skip_body = False
        self._failed = False
        #: whether the site's Content-Type names a charset (else the page's <meta> one is stated there)
        self._charset_stated = True

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            message = self._start(message)
            if self._rewriter is not None and not self._skip_body:
                self._held_start = message
            else:
                await self._send(message)
        elif kind == "http.response.body" and self._rewriter is not None:
            await self._body(message, self._rewriter)
        elif kind in _FILE_SENDS and self._rewriter is not None:
            await self._file_body(message, self._rewriter)
        else:
            await self._send(message)

    # -- headers

    def _start(self, message: Message) -> Message:
        has_cookies = False
        content_type = b""
        for key, value in message.get("headers", ()):
            if key == b"set-cookie":
                has_cookies = True
            elif key == b"content-type":
                content_type = value.lower()
        is_html = content_type.startswith(_HTML_TYPES)
        if not (has_cookies or is_html):
            return message  # the common case for assets and APIs: nothing to change
        headers: list[tuple[bytes, bytes]] = list(message["headers"])
        if has_cookies:
            headers = self._cookie_filter.filter(headers, self.decision)
        if is_html:
            headers = self._prepare_html(message, headers, content_type)
        return {**message, "headers": headers}

    def _prepare_html(
        self, message: Message, headers: list[tuple[bytes, bytes]], content_type: bytes
    ) -> list[tuple[bytes, bytes]]:
        status = message.get("status", 200)
        charset = _CHARSET.search(content_type)
        self._charset_stated = charset is not None
        if charset and not _ASCII_COMPATIBLE.match(charset.group(1).lower()):
            metrics.inc("rewrite_passthrough_total", reason="encoding")
            return headers
        encoding = _header_value(headers, b"content-encoding", b"identity").strip().lower()
        if encoding not in (b"identity", b""):
            self._decoder = _decoder_for(encoding)
            if self._decoder is None:
                metrics.inc("rewrite_passthrough_total", reason="content_encoding")
                return headers
        vary = _header_value(headers, b"vary", b"")
        fixed = [(k, v) for k, v in headers if k not in _DROPPED_FOR_HTML and k not in (b"cache-control", b"vary")]
        fixed.append((b"vary", _merge_vary(vary) if vary else b"Cookie"))
        fixed.append((b"cache-control", _private_cache_control(_header_value(headers, b"cache-control", b""))))
        if status in _NO_BODY_STATUSES or self.scope.get("method") == "HEAD":
            self._skip_body = True
        self._rewriter = self._rewriters.new(self.scope, self.decision, csp_nonce(headers))
        return fixed

    async def send_held_start(self) -> None:
        """The app failed after starting an HTML response whose start is still held (the rewriter had not
        read the first KiB): send it, so the visitor sees the page break off, not the server's error page."""
        start = self._held_start
        if start is not None:
            self._held_start = None
            with contextlib.suppress(Exception):  # the visitor may be gone already
                await self._send(start)

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
        while remaining != 0:
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
        more = message.get("more_body", False)
        if self._skip_body:
            await self._send(message)
            return
        out = self._rewrite(rewriter, message.get("body", b""), final=not more)
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
        try:
            if self._decoder is not None:
                chunk = self._decoder.decompress(chunk)
                if final:
                    chunk += self._decoder.flush()
        except Exception:
            # A corrupt compressed body cannot be read, so it cannot be shown either.
            if not self._failed:
                self._failed = True
                logger.warning("could not decode a %s HTML body; its remainder is dropped", "compressed")
                metrics.inc("rewrite_bailouts_total", reason="decode")
            return b""
        if self._failed:
            return self._rewriters.make_inert(chunk)
        try:
            out = rewriter.feed(chunk) if chunk else b""
            if final:
                out += rewriter.close()
                if rewriter.held_back:
                    metrics.inc_each("held_back_tags_total", "vendor", rewriter.held_back)
            return out
        except Exception:
            # The page must still arrive and no tracker may slip through: from here on every tag that could
            # load something is made inert.
            self._failed = True
            logger.exception("HTML rewrite failed; the rest of the page is made inert")
            metrics.inc("rewrite_bailouts_total", reason="error")
            return self._rewriters.make_inert(chunk)
