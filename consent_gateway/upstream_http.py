"""The proxy's HTTP/1.1 client for its one upstream: a keep-alive pool of asyncio connections whose answers
httptools parses (the parser uvicorn's fast server uses, so nothing new to install).

Written for `proxy.UpstreamProxy` rather than taken from aiohttp because of a measurement: in front of a
60 KB page aiohttp's client was ~23 % of the proxy's CPU — building a request and response object, a
cookie jar, timeouts rescheduled on every read, its own header rules — where the proxy already has the
visitor's headers filtered as bytes and needs only what is here (benchmarks/README.md, "Proxy mode").
aiohttp still carries WebSockets.

What it does: one request at a time per connection; the answer's body is read chunked, by length or to
the connection's close; reading pauses when more than `BUFFER_MAX_BYTES` wait for the reader; a request
body is written as it comes (its framing, length or chunks, is the caller's). A pooled connection the
upstream has closed in the meantime is retried once on a new one, for a request that is safe to send again
(idempotent, without a body); otherwise the failure is an `UpstreamError` (502) like any other. The read
timeout counts only while the reader waits for the upstream, the way aiohttp's `sock_read` did; a reader
that is slow itself (the visitor) pauses the upstream instead.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Final, cast

import httptools

from .errors import UpstreamError, UpstreamTimeout

#: what may wait in a connection for its reader before the socket is no longer read
BUFFER_MAX_BYTES: Final = 256 * 1024
#: an answer whose header lines add up to more is refused (502), as nginx refuses "too big" headers
HEADERS_MAX_BYTES: Final = 64 * 1024
#: a pooled connection idle longer than this is closed, not used (upstreams close idle ones themselves)
IDLE_SECONDS: Final = 15.0
#: methods a client may send again when a reused connection turned out closed (RFC 9110 §9.2.2)
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to the upstream, and the answer being read on it."""

    def __init__(self, client: UpstreamClient) -> None:
        self._client = client
        self._loop = client.loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0
        self._waiting_since = 0.0
        self._writer: asyncio.Future[None] | None = None
        #: done when the transport is gone
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._begin(head_request=False)
        self._busy = False

    def _begin(self, *, head_request: bool) -> None:
        self._busy = True
        self._head_request = head_request
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self.content_length: int | None = None
        self._chunked = False
        self.headers_done = False
        self._keep_alive = False
        self._complete = False
        self._until_close = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.got_data = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # bytes nobody asked for: the connection cannot be trusted with another request
            self.close()
            return
        self.got_data = True
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._fail(UpstreamError("the upstream switched protocols", kind="bad_response", original_error=exc))
        except httptools.HttpParserError as exc:
            error = UpstreamError(f"the upstream's answer is malformed: {exc}", kind="bad_response", original_error=exc)
            self._fail(error)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost says the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if not self.lost.done():
            self.lost.set_result(None)
        if self._until_close and self.headers_done and not self._complete and exc is None:
            self._complete = True  # a body without a length ends with the connection
            self._wake()
        elif self._busy and not self._complete:
            self._fail(UpstreamError("the upstream closed the connection", kind="bad_response", original_error=exc))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []  # an interim (1xx) answer's headers are not the final one's
        self._header_bytes = 0
        self.content_length = None
        self._chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > HEADERS_MAX_BYTES:
            raise ValueError(f"the upstream's headers pass {HEADERS_MAX_BYTES} bytes")  # the parser fails
        name = name.lower()
        self.headers.append((name, value))
        if name == b"content-length":
            self.content_length = int(value)  # llhttp has checked it is digits
        elif name == b"transfer-encoding":
            self._chunked = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return  # 100 Continue, 103 Early Hints: the answer is still to come
        self.status = status
        self.headers_done = True
        # llhttp clears what it knows of the connection once the message is over: asked here, not after
        self._keep_alive = self._parser.should_keep_alive()
        if self._head_request or status in _NO_BODY_STATUSES:
            # (after a HEAD answer llhttp waits for the body its length announces: `release` closes it)
            self._complete = True
        elif self.content_length is None and not self._chunked:
            self._until_close = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return  # a HEAD answer's connection, closed after it
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > BUFFER_MAX_BYTES and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            return
        self._complete = True
        self._wake()

    # -- the exchange --------------------------------------------------------------------------------
    def send(self, head: bytes, body: AsyncIterator[bytes] | None, *, chunked: bool, head_request: bool) -> None:
        """Write a request (`head` is its request line and headers); its body, if any, goes on in the
        background as the visitor sends it."""
        self._begin(head_request=head_request)
        assert self._transport is not None
        self._transport.write(head)
        if body is not None:
            self._writer = asyncio.ensure_future(self._write_body(body, chunked))
            self._writer.add_done_callback(self._body_written)

    async def _write_body(self, body: AsyncIterator[bytes], chunked: bool) -> None:
        transport = self._transport
        assert transport is not None
        async for chunk in body:
            if self.closed:
                return
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if self._write_paused:
                self._drain = self._loop.create_future()
                await self._drain
        if chunked and not self.closed:
            transport.write(b"0\r\n\r\n")

    def _body_written(self, writer: asyncio.Future[None]) -> None:
        if writer.cancelled():
            return
        exc = writer.exception()
        if exc is not None:  # the visitor's upload broke off: the upstream's answer is not wanted any more
            self._fail(exc if isinstance(exc, UpstreamError) else _BodyFailed(exc))
            self.close()

    async def wait_headers(self) -> None:
        while not self.headers_done:
            await self._wait()

    def has_buffered(self) -> bool:
        """Whether `read` returns at once."""
        return bool(self._chunks) or self._complete or self._error is not None

    def at_eof(self) -> bool:
        return self._complete and not self._chunks

    async def read(self) -> bytes:
        """What has come of the body since the last read (one piece), or b"" at its end."""
        while not self._chunks:
            if self._complete:
                return b""
            await self._wait()
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._buffered = 0
        if self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        self._waiting_since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._waiting_since + self._client.read_timeout, self._check_timeout)
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_timeout(self) -> None:
        # One timer per connection, moved on only when it fires, instead of one per read.
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self.closed:
            return
        due = max(self._last_data, self._waiting_since) + self._client.read_timeout
        if self._loop.time() >= due - 0.001:
            self._fail(UpstreamTimeout("the upstream did not answer in time", kind="timeout"))
            self.close()
        else:
            self._timer = self._loop.call_at(due, self._check_timeout)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._error)

    def release(self) -> None:
        """The reader is done: a connection whose answer was read whole goes back to the pool."""
        writer = self._writer
        self._writer = None
        reusable = (
            self._complete
            and not self._chunks
            and self._error is None
            and not self._head_request
            and not self.closed
            and (writer is None or (writer.done() and not writer.cancelled() and writer.exception() is None))
            and self._keep_alive
        )
        if writer is not None and not writer.done():
            writer.cancel()
        if reusable:
            self._busy = False
            self._client.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        """Close the connection, waking a pending read (it raises)."""
        if not self.closed:
            self._fail(UpstreamError("the connection to the upstream was closed", kind="bad_response"))
            if self._transport is not None:
                self._transport.close()
            self._forget()

    def _forget(self) -> None:
        if not self.closed:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._client.forget(self)


class _BodyFailed(UpstreamError):
    """The request body could not be read from the visitor (they left)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"the request body broke off: {exc!r}", kind="visitor_gone", original_error=exc)


class UpstreamClient:
    """A pool of keep-alive connections to one upstream (`host`, `port`, TLS when `ssl_context` is given).

    :param max_connections: connections open at once; a request beyond waits for one, within
        ``connect_timeout + read_timeout`` (504 after).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._idle: list[UpstreamConnection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()

    async def request(
        self, method: str, head: bytes, body: AsyncIterator[bytes] | None, *, chunked: bool
    ) -> UpstreamConnection:
        """Send a request and wait for its answer's status and headers; read the body from the connection
        returned, then `release` it."""
        connection = await self._acquire()
        head_request = method == "HEAD"
        try:
            connection.send(head, body, chunked=chunked, head_request=head_request)
            await connection.wait_headers()
            return connection
        except UpstreamError as exc:
            retry = (
                connection.reused
                and not connection.got_data
                and body is None
                and method in _IDEMPOTENT
                and not isinstance(exc, UpstreamTimeout)
            )
            connection.close()
            if not retry:
                raise
        except BaseException:  # cancelled (the visitor left, the server stops): the connection is spent
            connection.close()
            raise
        # The upstream had closed this pooled connection (an idle timeout meeting our request): a new one.
        connection = await self._acquire(fresh=True)
        try:
            connection.send(head, None, chunked=False, head_request=head_request)
            await connection.wait_headers()
        except BaseException:
            connection.close()
            raise
        return connection

    async def _acquire(self, *, fresh: bool = False) -> UpstreamConnection:
        idle = self._idle
        now = self.loop.time()
        while idle and not fresh:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if connection.closed:
                continue
            if now - connection.idle_since > IDLE_SECONDS:
                connection.close()
                continue
            connection.reused = True
            return connection
        while self._open >= self.max_connections:
            waiter: asyncio.Future[UpstreamConnection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, self.connect_timeout + self.read_timeout)
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():  # handed over just as this wait ended
                    handed = waiter.result()
                    if handed is not None:
                        self.put_back(handed)
                    else:
                        self._hand_slot()
                if isinstance(exc, TimeoutError):
                    raise UpstreamTimeout("no connection to the upstream came free", kind="timeout") from exc
                raise
            if handed is not None:
                handed.reused = True
                return handed
        self._open += 1
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.host if self.ssl_context is not None else None,
                ),
                self.connect_timeout,
            )
        except BaseException as exc:
            self._open -= 1
            self._hand_slot()
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout("the upstream did not accept a connection in time", kind="timeout") from exc
            if isinstance(exc, OSError):
                raise UpstreamError(f"the upstream could not be reached: {exc!r}", original_error=exc) from exc
            raise
        return connection

    def put_back(self, connection: UpstreamConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        connection.idle_since = self.loop.time()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        """A connection closed: its place in the pool is free."""
        self._open -= 1
        if connection in self._idle:  # closed by the upstream while it waited here
            self._idle.remove(connection)
        self._hand_slot()

    def _hand_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close the idle connections, waiting (briefly) until they are closed: a TLS connection needs
        a few turns of the loop to say goodbye, and a loop closed before would leave it open."""
        idle, self._idle = self._idle, []
        lost = [connection.lost for connection in idle if not connection.lost.done()]
        for connection in idle:
            connection.close()
        if lost:
            await asyncio.wait(lost, timeout=1.0)
