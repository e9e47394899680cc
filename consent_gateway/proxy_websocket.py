"""WebSockets through the reverse proxy, on aiohttp (plain HTTP has a client of its own: upstream_http.py),
and the one place aiohttp's and asyncio's failures become the gateway's (`map_upstream_error`, which the
beacon forwarder uses too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from . import metrics
from ._types import Message, Receive, Scope, Send
from .errors import UpstreamError, UpstreamTimeout
from .responses import error_response

logger = logging.getLogger("consent_gateway.proxy")

WEBSOCKET_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_INVALID_CLOSE_CODES = frozenset({1005, 1006, 1015})

#: What aiohttp would add to a request of its own accord; the proxy forwards the visitor's headers as they are.
_AIOHTTP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


class _ForwardedRequest(aiohttp.ClientRequest):
    """aiohttp's request for the handshake, adding none of its own headers: the same as ``skip_auto_headers``
    naming them all, without building and sorting that list again for every request."""

    _NONE_ADDED: CIMultiDict[None] = CIMultiDict((name, None) for name in _AIOHTTP_AUTO_HEADERS)

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        # aiohttp reads the attribute again where it would add a default Content-Type to a body
        self._skip_auto_headers = self._NONE_ADDED


def map_upstream_error(exc: BaseException) -> UpstreamError:
    """aiohttp's and asyncio's failures as the gateway's own, sorted in this one place.

    The proxy (HTTP and WebSocket) and the beacon forwarder answer and count from the result, the way httpx
    maps its transport's errors once (`map_httpcore_exceptions`). The original stays as `original_error`.
    """
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamTimeout("the upstream did not answer in time", kind="timeout", original_error=exc)
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ServerDisconnectedError):
        kind = "bad_response"
    else:
        kind = "connect"
    return UpstreamError(f"the upstream failed: {exc!r}", kind=kind, original_error=exc)


class WebSocketRelay:
    """Pass a visitor's WebSocket to the upstream and relay both ways, on an aiohttp session of its own.

    :param target: the upstream ws:// or wss:// URL for a scope.
    :param headers: the handshake headers to send upstream for a scope.
    """

    def __init__(
        self,
        upstream: str,
        *,
        target: Callable[[Scope], URL],
        headers: Callable[[Scope], list[tuple[str, str]]],
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        self.upstream = upstream
        self._target = target
        self._headers = headers
        self.max_connections = max_connections
        # Waiting for a free pooled connection counts against connect + read, never forever.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout + read_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the loop that serves requests (aiohttp binds to the running loop).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=self._timeout,
                auto_decompress=False,
                # Visitors must never share cookies: the proxy keeps none of its own.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Forward the visitor's headers as they are; add nothing of aiohttp's.
                request_class=_ForwardedRequest,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Open the upstream's WebSocket for a visitor's (whose `websocket.connect` has been received), then
        relay both ways until one side closes; refused as the upstream refused it, or with a 502/504."""
        session = self._get_session()
        try:
            upstream = await session.ws_connect(
                self._target(scope),
                headers=self._headers(scope),
                protocols=tuple(scope.get("subprotocols", ())),
                max_msg_size=WEBSOCKET_MAX_MESSAGE_BYTES,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:  # the upstream's own answer, passed on
            metrics.inc("upstream_errors_total", kind="websocket_refused")
            logger.info("upstream %s refused a WebSocket on %s: %s", self.upstream, scope["path"], exc.status)
            status = exc.status if 400 <= exc.status < 600 else 502
            await refuse_websocket(scope, receive, send, status, "websocket_refused", "The site refused the WebSocket.")
            return
        except Exception as exc:  # every failure maps to a clean 502/504
            error = map_upstream_error(exc)
            kind = "timeout" if isinstance(error, UpstreamTimeout) else "connect"
            metrics.inc("upstream_errors_total", kind=kind)
            logger.warning("upstream %s WebSocket failed on %s: %r", self.upstream, scope["path"], exc)
            await refuse_websocket(scope, receive, send, error.status, error.code, error.visitor_message)
            return
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
            await _pump_websocket(upstream, receive, send)
        finally:
            await upstream.close()


async def refuse_websocket(scope: Scope, receive: Receive, send: Send, status: int, code: str, text: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer when the server can send one."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await error_response(status, code, text)(scope, receive, send)
    else:
        await send({"type": "websocket.close", "code": 1011 if status >= 500 else 1008})


async def _pump_websocket(upstream: aiohttp.ClientWebSocketResponse, receive: Receive, send: Send) -> None:
    async def visitor_to_upstream() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.receive":
                if message.get("text") is not None:
                    await upstream.send_str(message["text"])
                else:
                    await upstream.send_bytes(message.get("bytes") or b"")
            elif message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(code=1000 if code in _INVALID_CLOSE_CODES else code)
                return

    async def upstream_to_visitor() -> None:
        while True:
            message = await upstream.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": message.data})
            elif message.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": message.data})
            else:  # CLOSE, CLOSING, CLOSED or ERROR: the upstream side is over
                code = upstream.close_code
                if message.type == aiohttp.WSMsgType.ERROR or code is None:
                    code = 1011 if message.type == aiohttp.WSMsgType.ERROR else 1000
                elif code in _INVALID_CLOSE_CODES:
                    code = 1000
                await send({"type": "websocket.close", "code": code})
                return

    tasks = [asyncio.ensure_future(visitor_to_upstream()), asyncio.ensure_future(upstream_to_visitor())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None and not isinstance(exc, OSError | aiohttp.ClientError):
            raise exc
