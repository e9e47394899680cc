"""Whether a browser would sniff a response as HTML: the WHATWG MIME Sniffing rules for a response sent
without a usable Content-Type ("rules for identifying an unknown MIME type", scriptable types allowed).

A page served with no Content-Type runs its scripts like any page when its first bytes look like HTML, so
the gateway must rewrite it too; `X-Content-Type-Options: nosniff` turns that sniffing off.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

#: Content-Type values that mean "unknown": the browser sniffs these as if there were none
UNKNOWN_TYPES: Final = frozenset({b"", b"unknown/unknown", b"application/unknown", b"*/*"})
#: the spec's "resource header": browsers look no further than this
SNIFF_BYTES: Final = 1445
_WHITESPACE: Final = b"\t\n\x0c\r "
#: the HTML signatures, each to be followed by a tag-terminating byte (space or ">"), letters in any case
_HTML_SIGNATURES: Final = tuple(
    s.lower()
    for s in (
        b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT", b"<TABLE",
        b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--",
    )
)
_LONGEST: Final = max(len(s) for s in _HTML_SIGNATURES) + 1


#: Fetch's HTTP whitespace, and a token (RFC 9110) as the MIME type parser checks it
_HTTP_WHITESPACE: Final = b"\t\n\r "
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHARSET_PARAMETER: Final = re.compile(rb'charset[\t\n\r ]*=', re.IGNORECASE)


def _split_values(value: bytes) -> list[bytes]:
    """Fetch's "get, decode, and split": a header's values cut at commas outside double quotes."""
    if b"," not in value:
        return [value]
    parts: list[bytes] = []
    start = position = 0
    quoted = False
    while position < len(value):
        byte = value[position]
        if quoted and byte == 0x5C:  # a backslash escapes the next byte inside quotes
            position += 1
        elif byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            parts.append(value[start:position])
            start = position + 1
        position += 1
    parts.append(value[start:])
    return parts


def _charset_of(parameters: bytes) -> bytes | None:
    """The first charset parameter's value (WHATWG MIME type parser: quoted or not, empty ignored)."""
    for raw in parameters.split(b";"):
        name, equals, value = raw.lstrip(_HTTP_WHITESPACE).partition(b"=")
        if not equals or name.lower() != b"charset":
            continue
        if value.startswith(b'"'):
            value = value[1:].split(b'"', 1)[0]
        else:
            value = value.rstrip(_HTTP_WHITESPACE)
        if value:
            return value
    return None


@functools.lru_cache(maxsize=256)  # a site sends a handful of distinct values: read each once
def parse_mime_type(value: bytes) -> tuple[bytes, bytes | None] | None:
    """(essence, charset) of one value, as the WHATWG MIME type parser reads it; None when it is no type."""
    value = value.strip(_HTTP_WHITESPACE)
    kind, slash, rest = value.partition(b"/")
    if not slash or not _TOKEN.fullmatch(kind):
        return None
    subtype, _, parameters = rest.partition(b";")
    subtype = subtype.rstrip(_HTTP_WHITESPACE)
    if not _TOKEN.fullmatch(subtype):
        return None
    charset = _charset_of(parameters) if parameters and _CHARSET_PARAMETER.search(parameters) else None
    return kind.lower() + b"/" + subtype.lower(), charset


def browser_content_type(values: Sequence[bytes]) -> tuple[bytes, bytes | None] | None:
    """The type a browser gives a response from all its Content-Type lines (Fetch, "extract a MIME type"):
    the last value that parses and is not */* wins, keeping an earlier charset of the same essence. None
    when no value is a type: the browser then sniffs, as with no header at all."""
    if len(values) == 1 and b"," not in values[0]:  # the common case: one line, one value
        single = parse_mime_type(values[0])
        return None if single is None or single[0] == b"*/*" else single
    essence: bytes | None = None
    charset: bytes | None = None
    found: tuple[bytes, bytes | None] | None = None
    for line in values:
        for value in _split_values(line):
            parsed = parse_mime_type(value)
            if parsed is None or parsed[0] == b"*/*":
                continue
            if parsed[0] != essence:
                essence, charset = parsed
                found = parsed
            else:
                found = (parsed[0], parsed[1] if parsed[1] is not None else charset)
    return found


def is_unknown_type(content_type: bytes | None) -> bool:
    """Whether a Content-Type (None: absent) leaves the type to sniffing."""
    if content_type is None:
        return True
    return content_type.split(b";", 1)[0].strip().lower() in UNKNOWN_TYPES


def sniffs_as_html(head: bytes, *, complete: bool) -> bool | None:
    """True or False once the first bytes of a body decide it; None while more bytes could change the answer.

    `complete`: `head` is the whole body (no more bytes will come).
    """
    start = 0
    while start < len(head) and head[start] in _WHITESPACE:
        start += 1
    if start >= SNIFF_BYTES:
        return False
    window = head[start : start + _LONGEST].lower()
    undecided = False
    for signature in _HTML_SIGNATURES:
        if window.startswith(signature):
            if len(window) > len(signature):
                if window[len(signature)] in b" >":
                    return True
            elif not complete:
                undecided = True
        elif signature.startswith(window) and not complete:
            undecided = True  # the signature may still come
    if undecided and start + len(window) < SNIFF_BYTES:
        return None
    return False
