"""Limits at the edge of the `proxy` command, and the consent POST rate limit.

`RequestLimits` wraps the whole gateway when it is the server the visitor talks to (``consent-gateway
proxy``): request headers past a size or count get 431, a second ``Host`` or ``Transfer-Encoding`` line
(which a front proxy may read differently: request smuggling) gets 400, and a request body that trickles
(no byte for ``body_idle_seconds``) or takes longer than ``request_seconds`` in all gets 408, so a slow
client cannot hold a worker. Embedded as a middleware, wrap the app in `RequestLimits.from_config` for the
same limits (README: "Limits under your own server" for what the server itself must still enforce).

`RateLimiter` is a per-address token bucket, in memory: each instance of a multi-instance gateway counts
for itself, which is enough to stop one address flooding the consent log.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from starlette.responses import Response

from . import metrics
from ._types import ASGIApp, Message, Receive, Scope, Send
from .config import Config
from .responses import error_response

#: A flood from made-up addresses must not grow memory without bound; the oldest buckets go first.
_MAX_BUCKETS: Final = 10_000


class RequestLimits:
    """ASGI wrapper refusing oversized or ambiguous request heads and slow request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_header_bytes: int = 32_768,
        max_headers: int = 100,
        body_idle_seconds: float = 30.0,
        request_seconds: float = 120.0,
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.body_idle_seconds = body_idle_seconds
        self.request_seconds = request_seconds

    @classmethod
    def from_config(cls, app: ASGIApp, config: Config) -> RequestLimits:
        """The limits of `[proxy]` around any app: what `consent-gateway proxy` serves, and what a site that
        embeds the middleware wraps its app in (``RequestLimits.from_config(ConsentGateway(app, config),
        config)``) to get the same limits under its own server."""
        return cls(
            app,
            max_header_bytes=config.proxy.max_header_bytes,
            max_headers=config.proxy.max_headers,
            body_idle_seconds=config.proxy.body_idle_timeout_seconds,
            request_seconds=config.proxy.request_timeout_seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("http_version") == "1.0":
            send = _Http10Body(send).send
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > self.max_headers:
            await _refuse(scope, receive, send, 431, "too_many_headers", f"at most {self.max_headers} header lines")
            return
        size = hosts = codings = 0
        has_body = False
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                codings += 1
                has_body = True
            elif name == b"content-length":
                has_body = has_body or value != b"0"
        if size > self.max_header_bytes:
            message = f"the request headers must total at most {self.max_header_bytes} bytes"
            await _refuse(scope, receive, send, 431, "headers_too_large", message)
            return
        if hosts > 1 or codings > 1:
            header = "Host" if hosts > 1 else "Transfer-Encoding"
            code = "duplicate_host" if hosts > 1 else "duplicate_transfer_encoding"
            await _refuse(scope, receive, send, 400, code, f"the request has more than one {header} header")
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        await _BodyClock(self, scope, receive, send).run()


class _BodyClock:
    """One request whose body is read under the idle and total limits; 408 when one is passed."""

    def __init__(self, limits: RequestLimits, scope: Scope, receive: Receive, send: Send) -> None:
        self.limits = limits
        self.scope = scope
        self._receive = receive
        self._send = send
        self.body_done = False
        self.started = False
        self.timed_out = False
        self.deadline = time.monotonic() + limits.request_seconds

    async def run(self) -> None:
        await self.limits.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.body_done or self.timed_out:
            return await self._receive()
        wait = min(self.limits.body_idle_seconds, self.deadline - time.monotonic())
        try:
            message = await asyncio.wait_for(self._receive(), max(wait, 0.0))
        except TimeoutError:
            self.timed_out = True
            if not self.started:
                self.started = True
                metrics.inc("requests_refused_total", reason="request_timeout")
                answer = error_response(408, "request_timeout", "the request body did not arrive in time")
                await answer(self.scope, self._receive, self._send)
            return {"type": "http.disconnect"}  # for the app: the visitor is gone
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self.timed_out:
            return  # the 408 has answered; whatever the app says now goes nowhere
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class _Http10Body:
    """An HTTP/1.0 client cannot read ``Transfer-Encoding: chunked`` (it came with HTTP/1.1): an app's own
    request for it is dropped, and the server sends a body without a length close-delimited (see
    serving.py, which `consent-gateway proxy` runs), streamed as it comes."""

    def __init__(self, send: Send) -> None:
        self._send = send

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if any(name.lower() == b"transfer-encoding" for name, _ in headers):
                kept = [(k, v) for k, v in headers if k.lower() != b"transfer-encoding"]
                message = {**message, "headers": kept}
        await self._send(message)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    metrics.inc("requests_refused_total", reason=code)
    await error_response(status, code, message, {"connection": "close"})(scope, receive, send)


class RateLimiter:
    """A token bucket per key: `burst` requests at once, then `per_minute` a minute."""

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        """0 when `key` may go on (a token is taken), else the seconds until it may."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate if self.rate > 0 else 60.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait

    def refusal(self, key: str, *, reason: str, what: str) -> Response | None:
        """None when `key` may go on; else a 429 with Retry-After ("too many `what` from this address"),
        counted in ``requests_refused_total`` as `reason`."""
        wait = self.retry_after(key)
        if wait <= 0:
            return None
        metrics.inc("requests_refused_total", reason=reason)
        retry = str(max(1, round(wait)))
        return error_response(
            429, "too_many_requests", f"too many {what} from this address; retry in {retry} s", {"retry-after": retry}
        )
