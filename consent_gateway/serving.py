"""The HTTP server settings the gateway needs from uvicorn, in one place: `consent-gateway proxy` and
`demo` use them, and a site embedding the middleware can pass the same to its own uvicorn.

Python's cyclic garbage collector is set for serving too (`settle_garbage_collector`): under load it ran a
young collection every few dozen requests (the objects of requests in flight count as new ones), and now
and then a full one over every module, config and catalog object loaded at start. Measured on the proxy in
front of a 60 KB page (wrk, 64 connections), that was ~12 us of CPU per request, nearly all of it finding
no garbage; with the start-up objects frozen and a young threshold above what requests in flight hold,
it is ~1 us (benchmarks/README.md, "Proxy mode: the proxy's own path").

HTTP/1.0 clients cannot read ``Transfer-Encoding: chunked`` (it came with HTTP/1.1). A rewritten page has no
length known in advance, so for them the body must be *close-delimited*: no Content-Length, no
Transfer-Encoding, the end of the body is the end of the connection (RFC 9112 §6.3). uvicorn's h11 server
does this by itself; its faster httptools server chunks every response without a length, whatever the
client's version. `Http10ClosingProtocol` is the httptools server with that difference (and the one
below), so the page streams to an HTTP/1.0 client as it does to any other, never gathered in memory.

The same server writes a response's head together with its first body bytes (`_OneWriteCycle`): uvicorn
writes them apart, one system call and one packet more per page (~5 us of kernel time for a 60 KB page
measured here); a head whose body is not sent in the same turn of the event loop goes out alone at its end.

It relies on internals of uvicorn's httptools server (the cycle object a request gets, and the
`chunked_encoding` / `expected_content_length` fields that frame its body, the `transport` its `send` writes
to); tests/test_http10.py and tests/test_serving_writes.py pin them.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from typing import Any, Final

from ._types import Message

#: young objects (net allocations) between two collections of a serving process; Python's default is 700
GC_YOUNG_THRESHOLD: Final = 7000
#: what a close-delimited body may still send: more than any response will
_UNTIL_CLOSE: Final = 1 << 62
_NO_BODY_STATUSES: Final = frozenset({204, 304})


def http_protocol() -> Any:
    """The `http` setting for uvicorn: the httptools server made HTTP/1.0-safe when httptools is installed,
    else h11 (which is HTTP/1.0-safe already)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    return Http10ClosingProtocol


def settle_garbage_collector() -> None:
    """Call once before serving, after the app is built: what start-up loaded (modules, config, catalog)
    is moved out of the collector's sight (`gc.freeze`), and the young generation is collected less often.
    Cyclic garbage is still collected, only in larger batches."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def _close_delimited(scope: Any, message: Message) -> bool:
    if scope.get("http_version") != "1.0" or scope.get("method") == "HEAD":
        return False
    if message.get("status", 200) in _NO_BODY_STATUSES:
        return False
    return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in message.get("headers", ()))


class _HeadFirst:
    """A connection's transport while a response's head waits for its first body bytes: the first write
    goes out with the head in front, in one system call; anything else is the transport's own."""

    __slots__ = ("_transport", "_head")

    def __init__(self, transport: Any, head: bytes) -> None:
        self._transport = transport
        self._head: bytes | None = head

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():  # the visitor left before the body
                self._transport.write(head)

    def write(self, data: bytes) -> None:
        if self._head is None:
            self._transport.write(data)
        else:
            head, self._head = self._head, None
            self._transport.writelines((head, data))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HeldHead:
    """Collects what uvicorn writes of a response's head."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
except ImportError:  # pragma: no cover - httptools is not installed: http_protocol() answers "h11"
    pass
else:

    class _OneWriteCycle(RequestResponseCycle):
        """A request's cycle whose response head goes out with the first body bytes, in one write (the
        gateway sends a page's start and body back to back: two writes cost a system call and a packet more).
        A head whose body does not follow in the same turn of the event loop goes out alone at the end of
        it: a stream that waits before its first bytes still shows its head at once."""

        _held: _HeadFirst | None = None
        _loop: asyncio.AbstractEventLoop  # the protocol's (asyncio.get_running_loop asks the OS for its pid)

        async def send(self, message: Message) -> None:  # type: ignore[override]
            kind = message["type"]
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()  # (before the transport is swapped below: nothing else runs meanwhile)
            if kind == "http.response.start" and not self.response_started and not self.disconnected:
                transport = self.transport
                collected = _HeldHead()
                self.transport = collected  # type: ignore[assignment]
                try:
                    await super().send(message)  # type: ignore[arg-type]
                finally:
                    self.transport = transport
                first = self._held = _HeadFirst(transport, b"".join(collected.parts))
                self._loop.call_soon(first.flush)
                return
            held = self._held
            if held is None or kind != "http.response.body":
                await super().send(message)  # type: ignore[arg-type]
                return
            self._held = None
            transport = self.transport
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)  # type: ignore[arg-type]
            finally:
                self.transport = transport
                held.flush()  # a body that wrote nothing (HEAD, an empty first message): the head alone

    class _ClosingCycle(_OneWriteCycle):
        """One HTTP/1.0 request's cycle: a response without a length is sent close-delimited."""

        _closing = False

        async def send(self, message: Message) -> None:  # type: ignore[override]
            kind = message["type"]
            if kind == "http.response.start" and not self.response_started and _close_delimited(self.scope, message):
                # Neither a length nor chunks: the server then writes the body as it comes and closes the
                # connection after it (keep-alive is off for HTTP/1.0 already).
                self._closing = True
                self.chunked_encoding = False
                self.expected_content_length = _UNTIL_CLOSE
            elif kind == "http.response.body" and self._closing and not message.get("more_body", False):
                self.expected_content_length = len(message.get("body", b""))  # the end: what is left is all
            await super().send(message)

    class Http10ClosingProtocol(HttpToolsProtocol):
        """uvicorn's httptools server, writing a response's head with its first body bytes, and sending
        HTTP/1.0 clients close-delimited bodies instead of chunks."""

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            cycle = self.cycle
            # the request's cycle was just made (not a pipelined one, nor an upgrade, which makes none) and its
            # ASGI task has not run yet: every send it makes goes through the cycle class set here
            if cycle is not None and cycle.scope is self.scope:
                closing = self.scope.get("http_version") == "1.0"
                cycle.__class__ = _ClosingCycle if closing else _OneWriteCycle
                cycle._loop = self.loop  # type: ignore[attr-defined]
