"""`multipart/x-mixed-replace` streams: each part is shown in place of the last, and Firefox renders a part
typed `text/html` (or sniffed as one) as a page, scripts and all. The gateway does not rewrite parts; it
reads each part's headers as the stream passes and refuses the stream (`UndecodableBody`, reason
`multipart_page`) at the first part that could be a page: typed HTML or XHTML, or with no usable type.
Image streams (MJPEG cameras), the common use, pass untouched.
"""

from __future__ import annotations

from typing import Final

from .codings import UndecodableBody
from .mimesniff import parse_mime_type

#: types a browser may render as a page, scripts included; a part without a usable type is sniffed
_PAGE_TYPES: Final = frozenset({b"text/html", b"application/xhtml+xml", b"image/svg+xml", b"text/xml",
                                b"application/xml"})
#: a part's header block longer than this is not read further: refused
MAX_PART_HEADER_BYTES: Final = 8192


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary parameter of a multipart Content-Type (quoted or not), or None."""
    for parameter in content_type.split(b";")[1:]:
        name, _, value = parameter.strip().partition(b"=")
        if name.strip().lower() == b"boundary":
            value = value.strip().strip(b'"')
            return value or None
    return None


class PartHeaders:
    """Reads a stream's part headers chunk by chunk (a delimiter cut by a chunk boundary is found too)."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"--" + boundary
        #: bytes kept from the last chunk: a delimiter or a header block may continue in the next one
        self._carry = b"\n"  # the stream's start counts as a line start
        #: inside a part's header block (after a delimiter line)
        self._header: bytearray | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._carry + chunk
        position = 0
        while True:
            if self._header is not None:
                self._header += data[position:]
                end = _header_end(self._header)
                if end == -1:
                    if len(self._header) > MAX_PART_HEADER_BYTES:
                        raise UndecodableBody("multipart_page", "a part's headers are too long to read")
                    self._carry = b""
                    return
                _check_part(bytes(self._header[:end]))
                data = bytes(self._header[end:])
                position = 0
                self._header = None
            found = data.find(b"\n" + self._delimiter, position)
            if found == -1:
                self._carry = data[-len(self._delimiter) :]
                return
            after = found + 1 + len(self._delimiter)
            if data[after : after + 2] == b"--":  # the closing delimiter: no part follows
                position = after + 2
                continue
            line_end = data.find(b"\n", after)
            if line_end == -1:
                self._carry = data[found:]
                return
            self._header = bytearray()
            position = line_end + 1


def _header_end(header: bytearray) -> int:
    """Where a part's header block ends (after its empty line), or -1 while it has not ended."""
    if header.startswith(b"\r\n"):
        return 2
    if header.startswith(b"\n"):
        return 1
    ends = [i + n for i, n in ((header.find(b"\n\r\n"), 3), (header.find(b"\n\n"), 2)) if i != -1]
    return min(ends) if ends else -1


def _check_part(header: bytes) -> None:
    content_type: bytes | None = None
    for line in header.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-type":
            content_type = value.strip()
    parsed = parse_mime_type(content_type) if content_type is not None else None
    if parsed is None or parsed[0] in _PAGE_TYPES:
        shown = "none" if content_type is None else content_type.decode("latin-1")[:60]
        raise UndecodableBody("multipart_page", f"a multipart part a browser may render as a page ({shown})")
