"""Content codings (RFC 9110 §8.4) of the HTML the gateway rewrites: which it can undo, within a size bound,
and which it puts back on toward the visitor.

Failing closed starts upstream: the site is only offered the codings this module can undo
(`decodable_accept_encoding`), so a page comes back in one of them. One that still arrives in another
coding, or that decodes past the size bound (a gzip bomb), is never passed on as it is: the responder
answers 502 instead (`UndecodableBody`).

Decoding is bounded as it goes, not after: every decoder hands out at most `PIECE_BYTES` at a time and
counts what it produced, so a 100 KB bomb stops at the bound instead of filling memory first.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from typing import Any, Final, Protocol

import brotli
import zstandard

#: the codings a browser can receive that the gateway undoes; "x-gzip" is gzip's old name
DECODABLE: Final = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd"})
#: largest output of one decoding step: memory per response stays near this, whatever the ratio
PIECE_BYTES: Final = 64 * 1024
#: RFC 9659 lets decoders refuse zstd windows above 8 MiB, as browsers do: a bigger window is refused
ZSTD_MAX_WINDOW_BYTES: Final = 8 * 1024 * 1024
#: what goes back on toward the visitor, best first; quality/level chosen for streaming speed
_ENCODINGS: Final = ("br", "gzip")
_BROTLI_QUALITY: Final = 4
_GZIP_LEVEL: Final = 6


class UndecodableBody(Exception):
    """A body the gateway cannot read, so must not pass on; `reason` names why (a metric label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def content_codings(value: bytes) -> list[str]:
    """The codings of a Content-Encoding value in the order they were applied, identity left out."""
    if not value:
        return []  # most responses: no header at all
    return [c for c in (part.strip().lower().decode("latin-1") for part in value.split(b",")) if c and c != "identity"]


def _accepted(value: str) -> dict[str, float]:
    """Each coding of an Accept-Encoding value with its weight (missing or malformed q → 1)."""
    weights: dict[str, float] = {}
    for item in value.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, number = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = min(max(float(number.strip()), 0.0), 1.0)
                except ValueError:
                    weight = 1.0
        weights[name] = weight
    return weights


@functools.lru_cache(maxsize=256)  # every request; browsers send a handful of distinct values
def decodable_accept_encoding(value: str) -> str:
    """The visitor's Accept-Encoding, less the codings the gateway could not undo.

    `*` becomes the decodable codings it stood for. Nothing left → "identity": an absent header would
    mean "any coding" (RFC 9110 §12.5.3).
    """
    weights = _accepted(value)
    star = weights.pop("*", None)
    kept = {name: q for name, q in weights.items() if name in DECODABLE and q > 0}
    if star:
        for name in ("br", "gzip", "zstd", "deflate"):
            if name not in weights:
                kept[name] = star
    if not kept:
        return "identity"
    return ", ".join(name if q == 1.0 else f"{name};q={q:g}" for name, q in kept.items())


@functools.lru_cache(maxsize=256)  # every page; browsers send a handful of distinct values
def visitor_encoding(value: str | None) -> str | None:
    """The coding to send a rewritten page in: br, else gzip, when the visitor accepts it; else None."""
    if not value:
        return None
    weights = _accepted(value)
    star = weights.get("*", 0.0)
    for name in _ENCODINGS:
        if weights.get(name, star) > 0:
            return name
    return None


# -- decoding -------------------------------------------------------------------------------------------


class _Stage(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def end(self) -> Iterator[bytes]: ...


class _Counted:
    """Counts one stage's output against the bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def count(self, piece: bytes) -> bytes:
        self.total += len(piece)
        if self.total > self.limit:
            raise UndecodableBody("too_large", f"the body decodes to more than {self.limit} bytes")
        return piece


class _ZlibStage(_Counted):
    """gzip (wbits 31) or zlib-wrapped deflate; `deflate` falls back to raw deflate, which some servers send."""

    def __init__(self, limit: int, wbits: int, raw_fallback: bool = False) -> None:
        super().__init__(limit)
        self._decoder: Any = zlib.decompressobj(wbits)
        #: deflate only: the first bytes, held until the two of a zlib header can be checked
        self._head: bytes | None = b"" if raw_fallback else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._head is not None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = None
            try:
                zlib.decompressobj(zlib.MAX_WBITS).decompress(data[:2])  # the header alone: no output
            except zlib.error:
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        decoder = self._decoder
        while not decoder.eof:
            out = decoder.decompress(data, PIECE_BYTES)
            data = decoder.unconsumed_tail
            if out:
                yield self.count(out)
            if not data and len(out) < PIECE_BYTES:
                return

    def end(self) -> Iterator[bytes]:
        if self._head:
            self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # one byte is no zlib header
            head, self._head = self._head, None
            yield from self.feed(head)
        yield from self.feed(b"")
        rest = self._decoder.flush()
        if rest:
            yield self.count(rest)


class _BrotliStage(_Counted):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        if decoder.is_finished():
            return
        out = decoder.process(data, output_buffer_limit=PIECE_BYTES)
        if out:
            yield self.count(bytes(out))
        while not decoder.can_accept_more_data():
            out = decoder.process(b"", output_buffer_limit=PIECE_BYTES)
            if not out:
                return
            yield self.count(bytes(out))

    def end(self) -> Iterator[bytes]:
        return iter(())


class _ZstdSink:
    """Where zstandard's stream writer puts its output, `PIECE_BYTES` at a time; it raises past the bound,
    which stops the decoder in the middle of a single large write."""

    def __init__(self, counted: _Counted) -> None:
        self._counted = counted
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.pieces.append(self._counted.count(bytes(data)))
        return len(data)


class _ZstdStage(_Counted):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._sink = _ZstdSink(self)
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW_BYTES)
        sink: Any = self._sink  # a writer is all zstandard needs, though its hints ask for a whole IO[bytes]
        self._writer = decompressor.stream_writer(sink, write_size=PIECE_BYTES, write_return_read=True)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            self._writer.write(data)
        pieces, self._sink.pieces = self._sink.pieces, []
        yield from pieces

    def end(self) -> Iterator[bytes]:
        return iter(())


def _stage(coding: str, limit: int) -> _Stage:
    if coding in ("gzip", "x-gzip"):
        return _ZlibStage(limit, 16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _ZlibStage(limit, zlib.MAX_WBITS, raw_fallback=True)
    if coding == "br":
        return _BrotliStage(limit)
    if coding == "zstd":
        return _ZstdStage(limit)
    raise UndecodableBody("unknown_coding", f"the gateway cannot decode Content-Encoding {coding!r}")


_DECODE_ERRORS = (zlib.error, brotli.error, zstandard.ZstdError)


class BodyDecoder:
    """Undoes a body's content codings, the last applied first, streaming, never past `limit` bytes per stage.

    Raises `UndecodableBody` for a coding it does not know (at construction), a corrupt body, or a body that
    decodes past the bound.
    """

    def __init__(self, codings: list[str], limit: int) -> None:
        self._stages = [_stage(coding, limit) for coding in reversed(codings)]

    def decode(self, data: bytes) -> bytes:
        return b"".join(self._guarded(self._through(0, data)))

    def finish(self) -> bytes:
        return b"".join(self._guarded(self._ends()))

    def _ends(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.end():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)

    @staticmethod
    def _guarded(pieces: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from pieces
        except _DECODE_ERRORS as exc:
            raise UndecodableBody("corrupt", f"the body is not valid for its Content-Encoding: {exc}") from None


# -- encoding toward the visitor -------------------------------------------------------------------------


class BodyEncoder:
    """Compresses a rewritten page as it streams: each chunk is flushed, so nothing waits for the next one."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._brotli: Any = None
        self._gzip: Any = None
        if coding == "br":
            self._brotli = brotli.Compressor(mode=brotli.MODE_TEXT, quality=_BROTLI_QUALITY)
        else:
            self._gzip = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def encode(self, data: bytes) -> bytes:
        if not data:
            return b""
        if self._brotli is not None:
            return bytes(self._brotli.process(data)) + bytes(self._brotli.flush())
        return bytes(self._gzip.compress(data)) + bytes(self._gzip.flush(zlib.Z_SYNC_FLUSH))

    def finish(self, data: bytes = b"") -> bytes:
        if self._brotli is not None:
            return (bytes(self._brotli.process(data)) if data else b"") + bytes(self._brotli.finish())
        return bytes(self._gzip.compress(data)) + bytes(self._gzip.flush(zlib.Z_FINISH))


class Precompressed:
    """Static files compressed once, at the best level, the first time each is asked for in each coding."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str], bytes] = {}

    def body(self, name: str, coding: str, plain: bytes) -> bytes:
        key = (name, coding)
        found = self._bodies.get(key)
        if found is None:
            if coding == "br":
                found = bytes(brotli.compress(plain, mode=brotli.MODE_TEXT, quality=11))
            else:
                found = gzip_compress(plain)
            self._bodies[key] = found
        return found


def gzip_compress(plain: bytes) -> bytes:
    """gzip at level 9 with no file name and a zero time: the same bytes on every instance (one ETag)."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return bytes(encoder.compress(plain)) + bytes(encoder.flush())
