"""The character encoding of an HTML body as a browser settles it, and the transcoding that lets the
byte-level rewriter read the one family where ASCII bytes are not ASCII characters: UTF-16.

A browser obeys a byte order mark before anything else, even a header saying UTF-8 (WHATWG Encoding,
"decode"); then the Content-Type charset. Every other encoding a browser knows keeps `<`, letters and
quotes as their ASCII bytes (or, for the "replacement" labels, shows no markup at all), so the rewriter
reads those as bytes; an unknown label is ignored by browsers, and read as bytes here too. A `<meta>`
naming UTF-16 means UTF-8 to a browser (HTML's prescan), so it never selects UTF-16.

UTF-16 pages are decoded, rewritten as UTF-8, and encoded back in the same byte order (with their BOM when
they had one), chunk by chunk: incremental codecs keep a code unit or surrogate pair cut by a chunk boundary
for the next chunk.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import Final

#: WHATWG Encoding labels of UTF-16LE and UTF-16BE ("utf-16" alone is little-endian)
_UTF16_LABELS: Final = {
    **dict.fromkeys(
        ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"), "utf-16-le"
    ),
    **dict.fromkeys(("unicodefffe", "utf-16be"), "utf-16-be"),
}
_CHARSET: Final = re.compile(rb"""charset\s*=\s*["']?([^\s;"',]+)""", re.IGNORECASE)
_BOMS: Final = ((codecs.BOM_UTF8, None), (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"))
_BOM_BYTES: Final = 3


@functools.lru_cache(maxsize=256)  # read on every page; a site sends a handful of distinct values
def header_encoding(content_type: bytes) -> str | None:
    """The Python codec of a Content-Type charset the rewriter must transcode (UTF-16), else None."""
    found = _CHARSET.search(content_type)
    if found is None:
        return None
    return _UTF16_LABELS.get(found.group(1).decode("latin-1").strip().lower())


class Transcoder:
    """Turns one HTML body into UTF-8 for the rewriter and the rewriter's output back, when the body is UTF-16.

    `to_utf8` holds the first bytes until a BOM can be told apart (3 bytes, or the end); until then, and for
    every body that is not UTF-16, bytes pass as they are.
    """

    __slots__ = ("_header", "_head", "_codec", "_decoder", "_encoder", "_back", "_bom")

    def __init__(self, header: str | None) -> None:
        self._header = header
        self._head: bytes | None = b""  # None once the encoding is settled
        self._codec: str | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._encoder: codecs.IncrementalEncoder | None = None
        #: the rewriter's UTF-8 read back, made with the encoder: a UTF-8 page (nearly all) never needs it
        self._back: codecs.IncrementalDecoder | None = None
        self._bom = b""

    @property
    def transcoding(self) -> str | None:
        return self._codec

    def to_utf8(self, data: bytes, *, final: bool) -> bytes:
        if self._head is not None:
            data = self._head + data
            if len(data) < _BOM_BYTES and not final:
                self._head = data
                return b""
            self._head = None
            data = self._settle(data)
        if self._decoder is None:
            return data
        return self._decoder.decode(data, final).encode("utf-8")

    def from_utf8(self, data: bytes, *, final: bool) -> bytes:
        if self._encoder is None or self._back is None:
            return data
        out = self._encoder.encode(self._back.decode(data, final), final)
        if self._bom:
            out, self._bom = self._bom + out, b""
        return out

    def _settle(self, data: bytes) -> bytes:
        """Decide the encoding on the first bytes; returns them without a UTF-16 BOM (kept for the output)."""
        codec = self._header
        for bom, named in _BOMS:
            if data.startswith(bom):
                codec = named
                if named is not None:
                    self._bom, data = bom, data[len(bom) :]
                break
        if codec is not None:
            self._codec = codec
            # WHATWG decoders replace what is not valid (a lone surrogate) with U+FFFD: so does this one
            self._decoder = codecs.getincrementaldecoder(codec)("replace")
            self._encoder = codecs.getincrementalencoder(codec)("strict")
            self._back = codecs.getincrementaldecoder("utf-8")("replace")
        return data
