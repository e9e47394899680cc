"""XML documents a browser runs scripts in: SVG, XML and other ``+xml`` types opened as a page.

The rewriter reads HTML only. An SVG or XML document a browser renders as a document (a top-level page, a
frame, an ``<object>`` or ``<embed>``) runs its ``<script>`` elements (SVG's own, or XHTML's under a prefix),
its ``on…=`` event attributes and its ``javascript:`` links, trackers included; the same file shown as an
image runs none. So a document of these types fetched as a document is read as it passes (decoded when it is
compressed, within the decoded-size bound) and refused at the first construct that runs a script
(``UndecodableBody``, reason ``scripted_xml``: a clean 502 while nothing is out, else the connection drops),
as the issue's principle asks of every body the gateway cannot rewrite: never passed on with its scripts
live. Scriptless documents (icons, diagrams, feeds) and every image fetch pass untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .codings import BodyDecoder, UndecodableBody

#: types browsers render as XML documents (XHTML goes to the HTML rewriter)
_XML_TYPES: Final = frozenset({b"image/svg+xml", b"text/xml", b"application/xml"})
#: `Sec-Fetch-Dest` values that render the response as a document; no header (older browsers, a link typed
#: in) counts as one too
_DOCUMENT_DESTINATIONS: Final = frozenset({b"document", b"iframe", b"frame", b"object", b"embed"})
#: what runs a script: a script element (any prefix), an event attribute, a javascript: URL
_SCRIPTING: Final = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?script[\s/>]|[\s\"'/]on[a-z]+\s*=|javascript\s*:", re.I)
#: bytes of one chunk kept to find a construct cut across two
_CARRY: Final = 256
REASON: Final = "scripted_xml"


def is_scriptable_xml(media_type: bytes) -> bool:
    return media_type in _XML_TYPES or (media_type.endswith(b"+xml") and media_type != b"application/xhtml+xml")


def rendered_as_document(headers: Mapping[bytes, bytes]) -> bool:
    """Whether the request's `Sec-Fetch-Dest` (lower-cased header names) renders the answer as a document."""
    dest = headers.get(b"sec-fetch-dest")
    return dest is None or dest.strip().lower() in _DOCUMENT_DESTINATIONS


class ScriptScan:
    """Reads a document's body as it passes; `feed` raises `UndecodableBody` at the first script."""

    def __init__(self, codings: list[str], limit: int) -> None:
        self._decoder = BodyDecoder(codings, limit) if codings else None
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        self._check(self._decoder.decode(chunk) if self._decoder is not None else chunk)

    def finish(self) -> None:
        if self._decoder is not None:
            self._check(self._decoder.finish())

    def _check(self, data: bytes) -> None:
        if not data:
            return
        window = self._carry + data
        if _SCRIPTING.search(window):
            raise UndecodableBody(REASON, "an XML document that runs scripts, which the gateway cannot hold back")
        self._carry = window[-_CARRY:]
