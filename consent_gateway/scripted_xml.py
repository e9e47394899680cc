"""XML documents a browser runs scripts in: SVG, XML and other ``+xml`` types opened as a page.

The rewriter reads HTML only. An SVG or XML document a browser renders as a document (a top-level page, a
frame, an ``<object>`` or ``<embed>``) runs its ``<script>`` elements (SVG's own, or XHTML's under a prefix),
its ``on…=`` event attributes, its ``javascript:`` links and what an XSLT style sheet writes; the same file
shown as an image runs none. So a document of these types fetched as a document is read as it passes
(decoded when it is compressed, within the decoded-size bound) and refused at the first construct that runs a
script (``UndecodableBody``, reason ``scripted_xml``: a clean 502 while nothing is out, else the connection
drops), as the issue's principle asks of every body the gateway cannot rewrite: never passed on with its
scripts live. Scriptless documents (icons, diagrams, feeds) and every image fetch pass untouched.

The body is read as markup, not searched as text: a feed whose articles say "javascript:" or quote a
``<script>`` inside CDATA or a comment runs nothing and passes. What could still hide a script is refused:
an entity declared with markup or a ``javascript:`` URL in its value (``&x;`` expands where it is used), an
``xml-stylesheet`` naming XSLT, a tag too long to read.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Final

from .codings import BodyDecoder, UndecodableBody

#: types browsers render as XML documents (XHTML goes to the HTML rewriter)
_XML_TYPES: Final = frozenset({b"image/svg+xml", b"text/xml", b"application/xml"})
#: `Sec-Fetch-Dest` values that render the response as a document; no header (older browsers, a link typed
#: in) counts as one too
_DOCUMENT_DESTINATIONS: Final = frozenset({b"document", b"iframe", b"frame", b"object", b"embed"})
REASON: Final = "scripted_xml"
#: the longest construct (a tag, a comment, a CDATA section, a doctype) kept across chunks; longer is refused
MAX_CONSTRUCT_BYTES: Final = 256 * 1024

#: where each construct that starts with "<" ends (None: a start or end tag, read with _TAG)
_CONSTRUCT_ENDS: Final = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
#: a start or end tag: its name and attributes, quoted values read whole (a ">" inside one does not end it)
_TAG: Final = re.compile(rb"""</?([^\s/>"'=]*)((?:[^>"']|"[^"]*"|'[^']*')*)>""")
_ATTRIBUTE: Final = re.compile(rb"""([^\s=/>"']+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>"']*))?""")
#: a doctype, its internal subset included (entity values may hold ">", quoted)
_DOCTYPE: Final = re.compile(
    rb"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*(?:\[(?:[^\]"']|"[^"]*"|'[^']*')*\]\s*)?>""", re.I
)
_ENTITY_VALUE: Final = re.compile(rb"""<!ENTITY\s+(?:%\s+)?\S+\s+("[^"]*"|'[^']*')""", re.I)
_XSLT: Final = re.compile(rb"xsl", re.I)
_URL_NOISE: Final = re.compile(r"[\x00-\x20]")  # a browser strips these from a URL before reading its scheme


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
        self._pending = b""  # an unfinished construct, kept until the next chunk completes it

    def feed(self, chunk: bytes) -> None:
        self._read(self._decoder.decode(chunk) if self._decoder is not None else chunk)

    def finish(self) -> None:
        if self._decoder is not None:
            self._read(self._decoder.finish())
        # an unfinished tag at the end runs nothing: a browser reports the document as not well-formed

    def _read(self, data: bytes) -> None:
        if not data:
            return
        buffer = self._pending + data
        pos = buffer.find(b"<")
        while pos >= 0:
            end = _construct_end(buffer, pos)
            if end is None:
                if len(buffer) - pos > MAX_CONSTRUCT_BYTES:
                    raise UndecodableBody(REASON, "an XML document with a construct too long to read")
                self._pending = buffer[pos:]
                return
            pos = buffer.find(b"<", end)
        self._pending = b""


def _construct_end(buffer: bytes, pos: int) -> int | None:
    """Where the construct at ``pos`` ends (None: not complete yet); raises at one that runs a script."""
    for opener, closer in _CONSTRUCT_ENDS:
        if buffer.startswith(opener, pos):
            close = buffer.find(closer, pos + len(opener))
            if close < 0:
                return None
            if (
                opener == b"<?"
                and buffer[pos + 2 : pos + 16].lower() == b"xml-stylesheet"
                and _XSLT.search(buffer, pos, close)
            ):
                raise UndecodableBody(REASON, "an XML document styled by XSLT, which can write scripts")
            return close + len(closer)
        if opener.startswith(buffer[pos:]):
            return None  # "<!-" at the end of a chunk: which construct it is comes next
    if buffer.startswith(b"<!", pos):
        if len(buffer) - pos < 9:
            return None
        if buffer[pos + 2 : pos + 9].upper() == b"DOCTYPE":
            return _doctype_end(buffer, pos)
    tag = _TAG.match(buffer, pos)
    if tag is None:
        return None  # no ">" yet, or one inside a quoted value still open
    if not buffer.startswith(b"</", pos):
        if _local(tag.group(1)) == b"script":
            raise UndecodableBody(REASON, "an XML document with a script element")
        for attribute, value in _ATTRIBUTE.findall(tag.group(2)):
            local = _local(attribute)
            if len(local) > 2 and local.startswith(b"on"):
                raise UndecodableBody(REASON, "an XML document with an event attribute")
            if _runs_script(_unquoted(value)):
                raise UndecodableBody(REASON, "an XML document with a javascript: URL")
    return tag.end()


def _doctype_end(buffer: bytes, pos: int) -> int | None:
    """A doctype whose internal subset declares no entity that could expand into a script."""
    doctype = _DOCTYPE.match(buffer, pos)
    if doctype is None:
        return None
    for value in _ENTITY_VALUE.findall(doctype.group()):
        text = html.unescape(_unquoted(value).decode("utf-8", "replace"))  # references expand when declared
        if "<" in text or _runs_script(_unquoted(value)):
            raise UndecodableBody(REASON, "an XML document declaring an entity that expands to markup")
    return doctype.end()


def _unquoted(value: bytes) -> bytes:
    return value[1:-1] if value[:1] in (b'"', b"'") else value


def _local(name: bytes) -> bytes:
    """An element or attribute name without its namespace prefix, lower-cased (svg:script, xlink:href)."""
    return name.rpartition(b":")[2].lower()


def _runs_script(value: bytes) -> bool:
    """Whether an attribute or entity value is a javascript: URL, as a browser reads it (references decoded)."""
    text = _URL_NOISE.sub("", html.unescape(value.decode("utf-8", "replace"))).lower()
    return text.startswith("javascript:")
