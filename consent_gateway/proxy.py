"""Reverse proxy to the site's upstream, as an ASGI app (``consent-gateway proxy --upstream URL``).

Plain HTTP goes through `upstream_http.UpstreamClient`, a keep-alive HTTP/1.1 client written for this one
upstream (chosen by measurement over aiohttp's client, itself chosen over httpx: figures in
``benchmarks/README.md``); WebSockets go through aiohttp. Bodies stream both ways — nothing is buffered
whole — so the gateway's middleware can rewrite HTML chunk by chunk as the upstream sends it.
Content-Encoding passes through untouched: the gateway decodes HTML itself and leaves everything else alone.

Upstream failures answer a generic 502 (refused, reset, bad answer) or 504 (timeout) and log the details;
nothing internal reaches the visitor. Once the response has started, a failure can only end the body.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator
from urllib.parse import quote

from yarl import URL

from . import metrics
from ._types import Receive, Scope, Send
from .errors import UpstreamError, UpstreamTimeout
from .proxy_websocket import WebSocketRelay, map_upstream_error, refuse_websocket
from .responses import error_for, error_response
from .upstream_http import UpstreamClient, UpstreamConnection

logger = logging.getLogger("consent_gateway.proxy")

#: RFC 9110 §7.6.1 hop-by-hop headers, plus the Proxy-* family. Connection's own tokens are added per message.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
_HOP_BY_HOP = frozenset(name.encode("latin-1") for name in HOP_BY_HOP_HEADERS)
#: Request headers the proxy sets itself (Expect is answered by the ASGI server, not forwarded).
_REQUEST_OWN_HEADERS = frozenset({b"host", b"expect", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
#: Headers of the WebSocket handshake that aiohttp generates for its own upstream connection.
_WEBSOCKET_HANDSHAKE_HEADERS = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
#: What a request loses on its way upstream (lowercased names, as bytes: each header is looked up once).
_REQUEST_SKIPPED = _HOP_BY_HOP | _REQUEST_OWN_HEADERS
_WEBSOCKET_REQUEST_SKIPPED = _REQUEST_SKIPPED | _WEBSOCKET_HANDSHAKE_HEADERS
#: The ASGI server adds its own Date and Server; like nginx (proxy_hide_header defaults) the upstream's are
#: dropped so a response never carries two.
_RESPONSE_SKIPPED = _HOP_BY_HOP | {b"date", b"server"}
#: A body of known length up to this size is read whole before it goes on: one message instead of as many
#: as the upstream's packets, so the gateway keeps its Content-Length and its chunk cache sees the same
#: bytes on every request. Longer bodies, and those of unknown length (event streams), go on as they arrive.
WHOLE_BODY_MAX_BYTES = 256 * 1024
_BODY_METHODS_WITHOUT_LENGTH = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}


def _connection_tokens(values: list[bytes]) -> frozenset[bytes]:
    """Header names listed in Connection are hop-by-hop for this message only."""
    return frozenset(token.strip().lower() for value in values for token in value.split(b",") if token.strip())


class _VisitorGone(Exception):
    """The visitor left while sending the request body."""


class _UnsafeRequest(Exception):
    """A request line or header that would not reach the upstream as one request (answered 400)."""


def _response_headers(response: UpstreamConnection) -> list[tuple[bytes, bytes]]:
    """The upstream's headers minus hop-by-hop ones (and those its Connection names), Date and Server."""
    kept: list[tuple[bytes, bytes]] = []
    connection: list[bytes] = []
    for name, value in response.headers:  # names come lowercased
        if name in _RESPONSE_SKIPPED or name.startswith(b"proxy-"):
            if name == b"connection":
                connection.append(value)
        else:
            kept.append((name, value))
    if connection:
        dropped = _connection_tokens(connection)
        return [(name, value) for name, value in kept if name not in dropped]
    return kept


class UpstreamProxy:
    """Forward HTTP and WebSocket requests to one upstream origin, streaming both ways.

    :param upstream: base URL of the site, e.g. ``http://127.0.0.1:8080`` (a path prefix is kept).
    :param connect_timeout: seconds to open a TCP connection to the upstream.
    :param read_timeout: seconds the upstream may stay silent while we wait for its headers or body.
    :param max_connections: size of the keep-alive connection pool.
    :param websocket: pass WebSocket upgrades through; when False they are answered 501.
    :param preserve_host: send the visitor's ``Host`` to the upstream instead of the upstream's own.
    """

    def __init__(
        self,
        upstream: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 100,
        websocket: bool = True,
        preserve_host: bool = False,
    ) -> None:
        base = URL(upstream)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"upstream must be an http:// or https:// URL with a host, got {upstream!r}")
        if base.query_string or base.fragment:
            raise ValueError(f"upstream must not carry a query or fragment, got {upstream!r}")
        self.upstream = upstream
        self._origin = f"{base.scheme}://{base.raw_authority}"
        self._base_path = base.raw_path.rstrip("/")
        self._ws_origin = ("wss" if base.scheme == "https" else "ws") + self._origin[len(base.scheme) :]
        self._https = base.scheme == "https"
        self._host = base.raw_host or ""
        self._port = base.port or (443 if self._https else 80)
        bracketed = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = (bracketed if base.is_default_port() else f"{bracketed}:{self._port}").encode("ascii")
        self._base_path_bytes = self._base_path.encode("latin-1")
        #: credentials in the upstream URL (http://user:pass@host) go upstream as Basic auth, as aiohttp sent them
        self._authorization = b""
        if base.user is not None:
            token = base64.b64encode(f"{base.user}:{base.password or ''}".encode("latin-1"))
            self._authorization = b"authorization: Basic " + token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.websocket = websocket
        self.preserve_host = preserve_host
        self._client: UpstreamClient | None = None
        self._websockets = WebSocketRelay(
            upstream,
            target=lambda scope: self._target(scope, self._ws_origin),
            headers=self._websocket_headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        await self._websockets.aclose()

    # -- ASGI ----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if self.websocket:
            await self._websockets.relay(scope, receive, send)
        else:
            await refuse_websocket(scope, receive, send, 501, "websocket_unsupported", "WebSocket is not proxied here.")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _target(self, scope: Scope, origin: str) -> URL:
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else quote(scope["path"], safe="/:@!$&'()*+,;=-._~%")
        query = scope.get("query_string", b"")
        text = origin + self._base_path + path
        if query:
            text += "?" + query.decode("latin-1")
        # encoded=True: the visitor's percent-encoding reaches the upstream byte for byte.
        return URL(text, encoded=True)

    def _websocket_headers(self, scope: Scope) -> list[tuple[str, str]]:
        """The headers of a WebSocket handshake to send upstream (aiohttp writes its own handshake ones)."""
        skipped = _WEBSOCKET_REQUEST_SKIPPED
        kept: list[tuple[bytes, bytes]] = []
        forwarded_for: list[str] = []
        connection: list[bytes] = []
        host = ""
        for raw_name, value in scope["headers"]:
            name = raw_name.lower()
            if name in skipped or name.startswith(b"proxy-"):
                if name == b"x-forwarded-for":
                    forwarded_for.append(value.decode("latin-1"))
                elif name == b"host":
                    host = value.decode("latin-1")
                elif name == b"connection":
                    connection.append(value)
            else:
                kept.append((name, value))
        if connection:
            dropped = _connection_tokens(connection)
            kept = [(name, value) for name, value in kept if name not in dropped]
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in kept]
        client = scope.get("client")
        if client:
            forwarded_for.append(str(client[0]))
        if forwarded_for:
            headers.append(("x-forwarded-for", ", ".join(forwarded_for)))
        scheme: str = scope.get("scheme", "http")
        headers.append(("x-forwarded-proto", _HTTP_SCHEMES.get(scheme, scheme)))
        if host:
            headers.append(("x-forwarded-host", host))
            if self.preserve_host:
                headers.append(("host", host))
        return headers

    # -- HTTP ----------------------------------------------------------------------------------------
    def _get_client(self) -> UpstreamClient:
        # Created on first use, inside the loop that serves requests (its connections belong to that loop).
        if self._client is None:
            self._client = UpstreamClient(
                self._host,
                self._port,
                ssl_context=self._ssl_context(),
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_connections=self.max_connections,
            )
        return self._client

    def _ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self._https else None

    def _request_head(self, scope: Scope, method: str) -> tuple[bytes, bool, bool]:
        """The request line and headers to send upstream, whether the visitor's request has a body, and
        whether that body comes in chunks (no length)."""
        kept: list[bytes] = []
        forwarded_for: list[bytes] = []
        connection: list[bytes] = []
        host = b""
        chunked = False
        has_length = False
        for raw_name, value in scope["headers"]:
            name = raw_name.lower()
            if name in _REQUEST_SKIPPED or name.startswith(b"proxy-"):
                if name == b"x-forwarded-for":
                    forwarded_for.append(value)
                elif name == b"host":
                    host = value
                elif name == b"connection":
                    connection.append(value)
                elif name == b"transfer-encoding":
                    chunked = True
            else:
                if name == b"content-length":
                    has_length = True
                elif name == b"authorization" and self._authorization:
                    continue  # the upstream URL's own credentials are sent instead
                kept.append(name + b": " + value)
        if connection:
            dropped = _connection_tokens(connection)
            kept = [line for line in kept if line.partition(b":")[0] not in dropped]
        client = scope.get("client")
        if client:
            forwarded_for.append(str(client[0]).encode("latin-1"))
        if forwarded_for:
            kept.append(b"x-forwarded-for: " + b", ".join(forwarded_for))
        scheme: str = scope.get("scheme", "http")
        kept.append(b"x-forwarded-proto: " + _HTTP_SCHEMES.get(scheme, scheme).encode("latin-1"))
        if host:
            kept.append(b"x-forwarded-host: " + host)
        kept.append(b"host: " + (host if host and self.preserve_host else self._host_header))
        if self._authorization:
            kept.append(self._authorization)
        has_body = chunked or has_length
        if chunked and not has_length:
            kept.append(b"transfer-encoding: chunked")
        elif not has_body and method not in _BODY_METHODS_WITHOUT_LENGTH:
            # A POST without a body still says so, as the visitor's client did (or should have).
            kept.append(b"content-length: 0")
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path or quote(scope["path"], safe="/:@!$&'()*+,;=-._~%").encode("latin-1")
        query: bytes = scope.get("query_string", b"")
        target = self._base_path_bytes + path + (b"?" + query if query else b"")
        head = b"".join((method.encode("latin-1"), b" ", target, b" HTTP/1.1\r\n", b"\r\n".join(kept), b"\r\n\r\n"))
        # Header names and values come from the ASGI server, which has parsed them; a server that let a
        # line break through must not get to split this request in two upstream (request smuggling).
        lines = len(kept) + 2
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b" " in target:
            raise _UnsafeRequest(scope["path"])
        return head, has_body, chunked and not has_length

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        try:
            head, has_body, chunked = self._request_head(scope, method)
        except _UnsafeRequest:
            await error_response(400, "bad_request", "The request could not be forwarded.")(scope, receive, send)
            return
        body_state = {"done": not has_body, "visitor_gone": False}

        async def request_body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    body_state["done"] = body_state["visitor_gone"] = True
                    raise _VisitorGone("client disconnected while sending the request body")
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    body_state["done"] = True
                    return

        try:
            response = await self._get_client().request(
                method, head, request_body() if has_body else None, chunked=chunked
            )
        except Exception as exc:  # every failure maps to a clean 502/504
            if body_state["visitor_gone"]:
                return  # the visitor gave up mid-upload: nobody to answer, nothing wrong upstream
            await self._send_error(scope, receive, send, map_upstream_error(exc))
            return
        try:
            await self._relay_response(response, scope, receive, send, body_state)
        finally:
            response.release()

    async def _relay_response(
        self,
        response: UpstreamConnection,
        scope: Scope,
        receive: Receive,
        send: Send,
        body_state: dict[str, bool],
    ) -> None:
        await send({"type": "http.response.start", "status": response.status, "headers": _response_headers(response)})
        length = response.content_length
        # A short body of known length goes on in one piece, however many packets it came in.
        whole_length = length if length is not None and length <= WHOLE_BODY_MAX_BYTES else -1
        held: list[bytes] = []
        held_bytes = 0
        gone = False
        watcher: asyncio.Future[None] | None = None

        async def watch_disconnect() -> None:
            nonlocal gone
            await _wait_disconnect(receive)
            gone = True
            response.close()  # wakes a pending read: an endless stream (SSE) stops when its reader leaves

        try:
            while True:
                if watcher is None and body_state["done"] and not response.has_buffered():
                    # Only a read that will wait on the upstream needs to notice the visitor leaving.
                    watcher = asyncio.ensure_future(watch_disconnect())
                try:
                    chunk = await response.read()
                except Exception as exc:  # the response has started: end the body, log the rest
                    if gone:
                        return
                    timeout = isinstance(map_upstream_error(exc), UpstreamTimeout)
                    metrics.inc("upstream_errors_total", kind="timeout" if timeout else "broken_body")
                    logger.warning("upstream %s broke off the body of %s: %r", self.upstream, scope["path"], exc)
                    response.close()
                    # No well-formed end: raising makes the server drop the connection, so the visitor's
                    # browser sees a broken page, not a truncated one that looks complete.
                    raise UpstreamError("the upstream broke off the body", kind="broken_body") from exc
                if not chunk:
                    break
                # Any other chunk goes out as soon as it arrives; the last one says so when the end is known.
                more_body = not response.at_eof()
                if more_body and held_bytes + len(chunk) < whole_length:
                    held.append(chunk)
                    held_bytes += len(chunk)
                    continue
                if held:
                    held.append(chunk)
                    chunk = b"".join(held)
                    held.clear()
                await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
                if not more_body:
                    return
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        try:
            if held:  # the upstream ended short of its Content-Length: what came still goes on
                await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except RuntimeError:
            # A body shorter than its Content-Length cannot end cleanly: the server drops the
            # connection instead, so the visitor sees a short answer rather than a complete-looking one.
            logger.info("ended a short body of %s by closing the connection", scope["path"])

    async def _send_error(self, scope: Scope, receive: Receive, send: Send, error: UpstreamError) -> None:
        metrics.inc("upstream_errors_total", kind=error.kind)
        logger.warning(
            "upstream %s failed for %s %s: %r", self.upstream, scope["method"], scope["path"], error.original_error
        )
        answer = error_for(scope, error.status, error.code, error.visitor_message, {"cache-control": "no-store"})
        await answer(scope, receive, send)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
