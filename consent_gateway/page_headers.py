"""The headers of a page that make a browser fetch before it reads the body, held back like the tags they
stand for: `Link` (RFC 8288) as `<link>`, `Refresh` as `<meta http-equiv=refresh>`.

Browsers act on `Link: <url>; rel=preload` (and preconnect, dns-prefetch, modulepreload, prefetch…) of a
page before reading a byte of it: a tag manager preloaded from the header is fetched, with its cookies,
whatever the rewriter does to the body. Each link-value is therefore read as the `<link>` tag it equals and
judged by the same holdback rules; one the visitor's decision holds back is dropped from the header (the
next page after a choice carries it again). A link-value that cannot be read is dropped when it names a
fetching rel, kept otherwise (canonical, alternate…), so nothing the gateway cannot judge is fetched.
A `Refresh` header to a URL the decision holds back is dropped whole: the page then stays where it is.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final

from .catalog import Catalog
from .decision import Decision
from .html.holdback import LINK_FETCH_RELS, hold_back_tag

#: the parameters a `<link>` tag reads as attributes to decide what it fetches
_TAG_PARAMETERS: Final = frozenset({b"rel", b"as", b"type", b"crossorigin", b"imagesrcset", b"imagesizes"})
_FETCH_HINT: Final = re.compile(b"(?i:" + b"|".join(re.escape(rel) for rel in sorted(LINK_FETCH_RELS)) + b")")
#: the vendor label a link-value that cannot be read is counted under
UNREADABLE: Final = "unreadable-link"


def _split_outside(value: bytes, separator: int) -> list[bytes]:
    """`value` cut at `separator` bytes outside `<…>` and double quotes (a backslash escapes in quotes)."""
    parts: list[bytes] = []
    start = position = 0
    quoted = bracketed = False
    while position < len(value):
        byte = value[position]
        if quoted:
            if byte == 0x5C:
                position += 1
            elif byte == 0x22:
                quoted = False
        elif bracketed:
            bracketed = byte != 0x3E
        elif byte == 0x22:
            quoted = True
        elif byte == 0x3C:
            bracketed = True
        elif byte == separator:
            parts.append(value[start:position])
            start = position + 1
        position += 1
    parts.append(value[start:])
    return parts


def _attribute(value: bytes) -> bytes:
    return value.replace(b"&", b"&amp;").replace(b'"', b"&quot;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


def as_link_tag(link_value: bytes) -> bytes | None:
    """The `<link>` start tag a link-value stands for, or None when it is not `<uri>; params` (RFC 8288)."""
    text = link_value.strip(b" \t")
    end = text.find(b">")
    if not text.startswith(b"<") or end == -1:
        return None
    attributes = {b"href": text[1:end]}
    parameters = _split_outside(text[end + 1 :], 0x3B)
    if parameters[0].strip(b" \t"):
        return None  # bytes between the URI and the first ";"
    for parameter in parameters[1:]:
        name, _, raw = parameter.partition(b"=")
        name = name.strip(b" \t").lower()
        raw = raw.strip(b" \t")
        if len(raw) >= 2 and raw.startswith(b'"') and raw.endswith(b'"'):
            raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
        if name in _TAG_PARAMETERS and name not in attributes:  # the first occurrence counts (RFC 8288 §3)
            attributes[name] = raw
    return b"<link " + b" ".join(name + b'="' + _attribute(value) + b'"' for name, value in attributes.items()) + b">"


def hold_back_links(value: bytes, catalog: Catalog, decision: Decision) -> tuple[bytes | None, Counter[str]]:
    """The Link header value the visitor may receive (None: nothing left) and the vendors held back."""
    kept: list[bytes] = []
    held: Counter[str] = Counter()
    for link_value in _split_outside(value, 0x2C):
        if not link_value.strip(b" \t"):
            continue
        tag = as_link_tag(link_value)
        if tag is None:
            if _FETCH_HINT.search(link_value):
                held[UNREADABLE] += 1
            else:
                kept.append(link_value.strip(b" \t"))
            continue
        found = hold_back_tag(tag, "link", catalog, decision)
        if found is None:
            kept.append(link_value.strip(b" \t"))
        else:
            held[found.vendor.id] += 1
    return (b", ".join(kept) if kept else None), held


def hold_back_refresh(value: bytes, catalog: Catalog, decision: Decision) -> str | None:
    """The vendor a `Refresh` header navigates to when the decision holds it back, else None."""
    tag = b'<meta http-equiv="refresh" content="' + _attribute(value) + b'">'
    found = hold_back_tag(tag, "meta", catalog, decision)
    return None if found is None else found.vendor.id
