"""Per-tag decision and rewrite: is this ``<script>``/``<iframe>``/``<img>``/``<link>`` a tracker the visitor
has not allowed, and if so, what does its held-back form look like?

The held-back form is what the banner restores from (vanilla-cookieconsent's convention): a script gets
``type="text/plain" data-category=… data-cg-vendor=…`` and its ``src`` renamed ``data-cg-src`` (an original
``type`` becomes ``data-cg-type``); iframes and images get ``src``/``srcset`` renamed ``data-cg-src`` /
``data-cg-srcset``; links get ``href`` renamed ``data-cg-href``. Every other attribute (nonce, async, defer,
integrity, …) is kept byte for byte. The new attributes are inserted right after the tag name: in HTML the
first of two duplicate attributes wins, so nothing later in the tag can override them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import NamedTuple

from .. import metrics
from ..catalog import Catalog, VendorRule
from ..decision import Decision

#: one attribute, with the tokenizer's rules: a quote only opens a value right after "=", a name may start
#: with "=" or contain quotes, an unquoted value runs to whitespace or ">"
_ATTR_RE = re.compile(
    rb"[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"([^\"]*+)\"|'([^']*+)'|([^\t\n\f\r >]*+)))?+"
)
_NAME_END_RE = re.compile(rb"<[^\t\n\f\r />]*")
#: the start of every tag that can fetch or run something, for bail-outs that do not read tags
_INERT_ALL = re.compile(rb"<((?i:script|iframe|img|link))(?=[\t\n\f\r />])")

#: script types the browser runs (HTML's JavaScript MIME type essence list, plus "module")
JS_TYPES = frozenset(
    {
        b"",
        b"module",
        b"application/ecmascript",
        b"application/javascript",
        b"application/x-ecmascript",
        b"application/x-javascript",
        b"text/ecmascript",
        b"text/javascript",
        b"text/javascript1.0",
        b"text/javascript1.1",
        b"text/javascript1.2",
        b"text/javascript1.3",
        b"text/javascript1.4",
        b"text/javascript1.5",
        b"text/jscript",
        b"text/livescript",
        b"text/x-ecmascript",
        b"text/x-javascript",
    }
)
#: <link rel> tokens that make the browser contact a host before any script runs
LINK_FETCH_RELS = frozenset({b"preload", b"prefetch", b"preconnect", b"dns-prefetch", b"modulepreload", b"prerender"})

_RENAMES: dict[str, dict[bytes, bytes]] = {
    "script": {b"src": b"data-cg-src", b"type": b"data-cg-type"},
    "iframe": {b"src": b"data-cg-src", b"srcdoc": b"data-cg-srcdoc"},
    "img": {b"src": b"data-cg-src", b"srcset": b"data-cg-srcset"},
    "link": {b"href": b"data-cg-href", b"imagesrcset": b"data-cg-imagesrcset"},
}
#: what a bail-out writes after the tag name to make a tag inert without reading it (first duplicate wins)
INERT_ATTRS: dict[str, bytes] = {
    "script": b' type="text/plain" data-cg-bailout=""',
    "iframe": b' src="about:blank" srcdoc="" data-cg-bailout=""',
    "img": b' src="data:," srcset="" data-cg-bailout=""',
    "link": b' rel="cg-held" href="" data-cg-bailout=""',
}


class Attribute(NamedTuple):
    #: lowercased name
    name: bytes
    name_start: int
    name_end: int
    #: raw (still entity-encoded) value; None for a bare attribute
    value: bytes | None


@dataclass(frozen=True, slots=True)
class HeldBack:
    tag: bytes
    vendor: VendorRule


def parse_attributes(tag: bytes) -> tuple[int, list[Attribute]]:
    """(end of the tag name, attributes) of a complete start tag ``<name …>``."""
    name_match = _NAME_END_RE.match(tag)
    name_end = name_match.end() if name_match else 1
    attrs: list[Attribute] = []
    pos = name_end
    end = len(tag) - 1  # the closing ">"
    match_at = _ATTR_RE.match
    while pos < end:
        m = match_at(tag, pos, end)
        if m is None:
            break
        value = m.group(2)
        if value is None:
            value = m.group(3)
            if value is None:
                value = m.group(4)
        attrs.append(Attribute(m.group(1).lower(), m.start(1), m.end(1), value))
        pos = m.end()
    return name_end, attrs


def first_value(attrs: list[Attribute], name: bytes) -> bytes | None:
    """The value of the first attribute of that name (the one a browser uses); b"" for a bare one."""
    for attr in attrs:
        if attr.name == name:
            return attr.value if attr.value is not None else b""
    return None


def script_is_executable(attrs: list[Attribute]) -> bool:
    """Would a browser run this script? Data blocks and hand-marked ``type="text/plain"`` tags are not run."""
    value = first_value(attrs, b"type")
    if value is None:
        return True
    essence = _decode(value).strip(" \t\n\f\r").lower().partition(";")[0].strip()
    return essence.encode() in JS_TYPES


def _decode(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    return html.unescape(text) if "&" in text else text


def _srcset_urls(value: bytes) -> list[str]:
    return [part.strip().split(None, 1)[0] for part in _decode(value).split(",") if part.strip()]


def _first_disallowed(vendors: list[VendorRule], decision: Decision) -> VendorRule | None:
    for vendor in vendors:
        if not decision.allows_vendor(vendor.id, vendor.category):
            return vendor
    return None


def vendors_of_tag(kind: str, attrs: list[Attribute], catalog: Catalog, inline_body: bytes | None = None,
                   inline_vendors: list[VendorRule] | None = None) -> list[VendorRule]:
    """Every catalog vendor a start tag (or an inline script body) would contact or run."""
    found: list[VendorRule] = []

    def add_url(raw: bytes | None, url_kind: str) -> None:
        if raw:
            vendor = catalog.vendor_for_url(_decode(raw), url_kind)
            if vendor is not None and vendor not in found:
                found.append(vendor)

    if kind == "script":
        if not script_is_executable(attrs):
            return found
        src = first_value(attrs, b"src")
        if src is not None:
            add_url(src, "script")
        elif inline_vendors is not None:
            found.extend(inline_vendors)
        elif inline_body:
            found.extend(catalog.vendors_for_inline_bytes(inline_body))
    elif kind == "iframe":
        add_url(first_value(attrs, b"src"), "iframe")
    elif kind == "img":
        add_url(first_value(attrs, b"src"), "img")
        srcset = first_value(attrs, b"srcset")
        if srcset:
            for url in _srcset_urls(srcset):
                add_url(url.encode(), "img")
    elif kind == "link":
        rel = first_value(attrs, b"rel")
        if rel and any(token in LINK_FETCH_RELS for token in rel.lower().split()):
            add_url(first_value(attrs, b"href"), "link")
            srcset = first_value(attrs, b"imagesrcset")
            if srcset:
                for url in _srcset_urls(srcset):
                    add_url(url.encode(), "link")
    return found


def hold_back_tag(tag: bytes, kind: str, catalog: Catalog, decision: Decision,
                  inline_body: bytes | None = None, *, may_name_vendor: bool | None = None,
                  inline_vendors: list[VendorRule] | None = None) -> HeldBack | None:
    """The held-back form of a complete start tag, or None when the decision lets it through.

    ``kind`` is the lowercased tag name ("script", "iframe", "img" or "link"); ``inline_body`` is the text of
    an inline script, matched against the catalog's inline signatures. ``may_name_vendor`` is a caller's
    pre-check (False: no catalog string in the tag); None runs the catalog's own. ``inline_vendors`` are
    the vendors of the inline body's signatures when a caller found them already, in order of appearance.
    """
    if inline_body is None:
        if may_name_vendor is None:
            may_name_vendor = catalog.tag_may_name_vendor(tag)
        if not may_name_vendor:
            return None
    name_end, attrs = parse_attributes(tag)
    vendor = _first_disallowed(vendors_of_tag(kind, attrs, catalog, inline_body, inline_vendors), decision)
    if vendor is None:
        return None
    return HeldBack(rewrite_held_back(tag, kind, name_end, attrs, vendor.category, vendor.id), vendor)


def rewrite_held_back(tag: bytes, kind: str, name_end: int, attrs: list[Attribute], category: str,
                      vendor_id: str) -> bytes:
    marks = (
        f' data-category="{html.escape(category, quote=True)}" data-cg-vendor="{html.escape(vendor_id, quote=True)}"'
    ).encode()
    if kind == "script":
        marks = b' type="text/plain"' + marks
    renames = _RENAMES[kind]
    parts = [tag[:name_end], marks]
    last = name_end
    for attr in attrs:
        new_name = renames.get(attr.name)
        if new_name is not None:
            parts.append(tag[last : attr.name_start])
            parts.append(new_name)
            last = attr.name_end
    parts.append(tag[last:])
    return b"".join(parts)


def inert_prefix(kind: str) -> bytes:
    """Attributes that make a tag of this kind inert when inserted right after its name (bail-outs)."""
    return INERT_ATTRS[kind]


def inert_all(data: bytes, pos: int, final: bool, out: list[bytes | None]) -> int:
    """After a failure: make every tracker-capable tag from ``pos`` inert without reading it, cheaply.
    Returns where a possibly cut tag starts (kept for the next chunk)."""
    n = len(data)
    end = n
    if not final:
        cut = data.rfind(b"<", max(pos, n - 8))
        if cut != -1:
            end = cut
    last = pos
    for m in _INERT_ALL.finditer(data, pos, end):
        out.append(data[last : m.end()])
        out.append(INERT_ATTRS[m.group(1).lower().decode()])
        last = m.end()
    out.append(data[last:end])
    return end


def make_inert(chunk: bytes) -> bytes:
    """Make every ``<script``/``<iframe``/``<img``/``<link`` of a chunk inert without reading it.

    Stateless, for callers that lost the rewriter; a tag cut by the chunk boundary is not seen (a
    ``HoldbackRewriter`` that fails handles that itself, keeping the tail for the next chunk).
    """
    return _INERT_ALL.sub(lambda m: m.group() + INERT_ATTRS[m.group(1).lower().decode()], chunk)


class DocumentHoldback:
    """The holdback decisions of one document: what this visitor's decision makes of each tag the tokenizer
    hands over, and which vendors were held back during the current run (a chunk, or a cached segment)."""

    __slots__ = ("catalog", "decision", "held", "cacheable")

    def __init__(self, catalog: Catalog, decision: Decision) -> None:
        self.catalog = catalog
        self.decision = decision
        self.held: list[str] = []
        #: False once the run made a decision that must not be replayed from the cache (a bail-out)
        self.cacheable = True

    def start_run(self) -> None:
        self.held = []
        self.cacheable = True

    def tag(self, tag: bytes, kind: str, may_name_vendor: bool | None = None) -> bytes:
        """The start tag or its held-back form (``may_name_vendor``: see :func:`hold_back_tag`)."""
        held = hold_back_tag(tag, kind, self.catalog, self.decision, may_name_vendor=may_name_vendor)
        if held is None:
            return tag
        self.held.append(held.vendor.id)
        return held.tag

    def inline_script(self, tag: bytes, body: bytes, signatures: list[bytes] | None = None, *,
                      too_long: bool = False) -> bytes:
        """The open tag of an inline script, decided on its body (``signatures``: the catalog signatures a
        caller found in it already, in order). ``too_long``: the body is only the script's first part."""
        vendors: list[VendorRule] | None = None
        if signatures is not None:
            vendors = []
            for signature in signatures:
                vendor = self.catalog.vendor_for_signature(signature)
                if vendor not in vendors:
                    vendors.append(vendor)
        held = hold_back_tag(tag, "script", self.catalog, self.decision, body, inline_vendors=vendors)
        if held is not None:
            self.held.append(held.vendor.id)
            return held.tag
        if too_long:
            # nothing disallowed in what could be read, but the rest is unknown: fail closed
            return self.inert_tag(tag, "script", "inline_script_too_long")
        return tag

    def inert_tag(self, tag: bytes, kind: str, reason: str) -> bytes:
        """Fail closed on a whole start tag that cannot be judged."""
        name_end, _ = parse_attributes(tag)
        return tag[:name_end] + self.inert_attributes(kind, reason) + tag[name_end:]

    def inert_attributes(self, kind: str, reason: str) -> bytes:
        """Fail closed on a tag that cannot be read: what to write right after its name. Counted, and never
        cached (the decision depends on where the buffer limit fell)."""
        metrics.inc("rewrite_bailouts_total", reason=reason)
        self.cacheable = False
        return INERT_ATTRS[kind]
