"""Whether a browser would sniff a response as HTML: the WHATWG MIME Sniffing rules for a response sent
without a usable Content-Type ("rules for identifying an unknown MIME type", scriptable types allowed).

A page served with no Content-Type runs its scripts like any page when its first bytes look like HTML, so
the gateway must rewrite it too; `X-Content-Type-Options: nosniff` turns that sniffing off.
"""

from __future__ import annotations

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
