"""What one document's rewrite asks the holdback layer: the decision for each tag the tokenizer hands over,
an inline script decided on its body (or its first part), and the fail-closed forms for what cannot be
read — a tag too long for the buffer, or the rest of a page after an error."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Any

from .. import metrics
from ..catalog import Catalog, VendorRule
from ..decision import Decision
from ..thirdparty import UNCLASSIFIED
from ..urls import clean_url
from .cache import TAG_CACHE_MAX_ENTRIES, TAG_CACHE_MAX_TAG_BYTES, Sighting
from .css import has_css_fetch_hint, held_token, hold_back_css, token_url
from .holdback import (
    BAILOUT_MARK,
    ELEMENT_KINDS,
    HOLD_TAG_NAMES,
    INERT_ATTRS,
    INERT_STYLE,
    hold_back_tag,
    note_third_parties,
    parse_attributes,
    vendor_of_url,
)
from .inline_loaders import LOADER_SCAN_BYTES, loader_vendors

#: a style attribute (or one whose name ends in "style": the attribute parser decides)
_STYLE_ATTR = re.compile(rb"(?i:style)[\t\n\f\r ]*+=")
#: the value of the attribute whose name ends at the match's start, up to its end
_ATTR_VALUE = re.compile(rb"[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >]*+)")
#: CSS URLs are looked up as images first, then as any other kind (a tracker host is one whatever loads it)
_CSS_SPEC = ELEMENT_KINDS["img"]


def may_hold_css(tag: bytes) -> bool:
    """Whether a start tag may carry a CSS url() in a style attribute (cheap; the holdback reads it)."""
    return has_css_fetch_hint(tag) and b"style" in tag.lower() and _STYLE_ATTR.search(tag) is not None


#: the start of every tag that can fetch or run something, for bail-outs that do not read tags
_INERT_ALL = re.compile(b"<((?i:" + b"|".join(n.encode() for n in HOLD_TAG_NAMES) + rb"))(?=[\t\n\f\r />])")


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
    """Make every tag of a chunk that can fetch or run something inert without reading it.

    Stateless, for callers that lost the rewriter; a tag cut by the chunk boundary is not seen (a
    ``HoldbackRewriter`` that fails handles that itself, keeping the tail for the next chunk).
    """
    return _INERT_ALL.sub(lambda m: m.group() + INERT_ATTRS[m.group(1).lower().decode()], chunk)


def _srcdoc_at(srcdoc: Callable[[str, str], list[VendorRule]], base: str, document: str) -> list[VendorRule]:
    """The vendors an iframe's inline document holds back, its URLs resolved against ``base``."""
    return srcdoc(document, base)


class DocumentHoldback:
    """The holdback decisions of one document: what this visitor's decision makes of each tag the tokenizer
    hands over, and which vendors were held back during the current run (a chunk, or a cached segment)."""

    __slots__ = ("catalog", "decision", "held", "noted", "cacheable", "srcdoc_vendors", "_allows_everything",
                 "_css_vendors",
                 "_tag_cache", "_tag_key")

    def __init__(self, catalog: Catalog, decision: Decision, tag_cache: dict[Any, Any] | None = None,
                 cache_prefix: int = -1) -> None:
        self.catalog = catalog
        self.decision = decision
        #: tag decisions shared by the documents of one catalog and decision (``ChunkCache.tag_decisions``)
        self._tag_cache = tag_cache
        self._tag_key = cache_prefix
        self.held: list[str] = []
        #: each third-party element of the run: (host, vendor id, element kind, held back)
        self.noted: list[Sighting] = []
        #: False once the run made a decision that must not be replayed from the cache (a bail-out)
        self.cacheable = True
        #: the vendors an iframe's inline document holds back, as read by the driver (see ``vendors_of_tag``)
        self.srcdoc_vendors: Callable[[str, str], list[VendorRule]] | None = None
        self._allows_everything: bool | None = None
        #: the vendor of each CSS URL of the document met so far (by URL as written and base)
        self._css_vendors: dict[tuple[str, str], tuple[VendorRule | None, list[tuple[VendorRule, str]]]] = {}

    def allows_everything(self) -> bool:
        """Whether this visitor allowed every vendor the catalog knows and every unclassified host: then a
        tag that cannot be read holds nothing back. Worked out only when a bail-out asks (rare)."""
        if self._allows_everything is None:
            decision = self.decision
            categories = {vendor.category for vendor in self.catalog.vendors.values()} | {UNCLASSIFIED}
            self._allows_everything = not decision.vendors_refused and all(
                decision.allows_category(category) for category in categories
            )
        return self._allows_everything

    def start_run(self) -> None:
        self.held = []
        self.noted = []
        self.cacheable = True

    def tag(self, tag: bytes, kind: str, may_name_vendor: bool | None = None, base: str = "") -> bytes:
        """The start tag or its held-back form (``may_name_vendor``, ``base``: see :func:`hold_back_tag`)."""
        srcdoc = self.srcdoc_vendors
        if srcdoc is not None and kind == "iframe":
            if b"srcdoc" in tag.lower():  # its inline document is rewritten as a page: not kept
                # a partial, not a nested function: compiled, its closure would hold itself (a reference cycle)
                return self._decide(tag, kind, may_name_vendor, base, functools.partial(_srcdoc_at, srcdoc, base))
        cache = self._tag_cache
        if cache is None or len(tag) > TAG_CACHE_MAX_TAG_BYTES:
            return self._decide(tag, kind, may_name_vendor, base, None)
        key = (self._tag_key, base, kind, tag)
        known = cache.get(key)
        if known is not None:  # the same tag, decided before: its output, and what it noted, again
            out, held_id, noted = known
            if held_id is not None:
                self.held.append(held_id)
            if noted:
                self.noted.extend(noted)
                note_seen = self.catalog.third_parties.note_seen
                for host, vendor, _, held in noted:
                    if vendor == UNCLASSIFIED:
                        note_seen(host, held)
            return out  # type: ignore[no-any-return]
        noted_before, held_before = len(self.noted), len(self.held)
        out = self._decide(tag, kind, may_name_vendor, base, None)
        if len(cache) >= TAG_CACHE_MAX_ENTRIES:
            cache.clear()
        cache[key] = (out, self.held[held_before] if len(self.held) > held_before else None,
                      tuple(self.noted[noted_before:]))
        return out

    def _decide(self, tag: bytes, kind: str, may_name_vendor: bool | None, base: str,
                srcdoc: Callable[[str], list[VendorRule]] | None) -> bytes:
        """``kind`` "": a tag that fetches nothing itself, read only for its style attribute."""
        held = hold_back_tag(tag, kind, self.catalog, self.decision, may_name_vendor=may_name_vendor, base=base,
                             srcdoc_vendors=srcdoc, noted=self.noted) if kind else None
        if held is not None:
            self.held.append(held.vendor.id)
            tag = held.tag
        return self._styled(tag, base) if may_hold_css(tag) else tag

    def _styled(self, tag: bytes, base: str) -> bytes:
        """The start tag with the url()s of its style attribute that this visitor does not allow held back."""
        _, attrs = parse_attributes(tag)
        style = next((attr for attr in attrs if attr.name == b"style"), None)  # a browser uses the first
        if style is None or not style.value or not has_css_fetch_hint(style.value):
            return tag
        text = style.value.decode("utf-8", "replace")
        css = (html.unescape(text) if "&" in text else text).encode("utf-8", "surrogatepass")
        parts: list[bytes | None] = []
        held_before = len(self.held)
        hold_back_css(css, 0, len(css), len(css), True, lambda token: self.css_token(token, base), parts)
        if len(self.held) == held_before:
            return tag  # nothing held
        held_css = b"".join(part for part in parts if part is not None).decode("utf-8", "surrogatepass")
        value = html.escape(held_css, quote=True).encode("utf-8", "surrogatepass")
        value_end = _ATTR_VALUE.match(tag, style.name_end)
        assert value_end is not None  # the attribute has a value: the parser read it
        return b"".join((tag[: style.name_start], b'style="', value, b'"', tag[value_end.end() :]))

    def _css_vendor(self, url: str, base: str) -> tuple[VendorRule | None, list[tuple[VendorRule, str]]]:
        """The vendor of a CSS URL (cleaned) and the (vendor, host) pairs the inventory notes."""
        hosts: list[tuple[VendorRule, str]] = []
        if not base and ":" not in url and "//" not in url and "\\" not in url and url.isascii() and (
                not self.catalog.tag_may_name_vendor(url.encode())):
            return None, hosts  # a path on the page's own host that names no catalog vendor (the common case)
        return vendor_of_url(self.catalog, url, _CSS_SPEC, base, self.decision.site, hosts=hosts), hosts

    def css_token(self, token: re.Match[bytes], base: str) -> bytes | None:
        """The held form of a CSS token (``css.TOKEN``) whose URL this visitor does not allow, else None."""
        url = token_url(token)
        if not url:
            return None
        key = (url, base)
        known = self._css_vendors.get(key)
        if known is None:
            known = self._css_vendor(clean_url(url), base)
            self._css_vendors[key] = known
        vendor, hosts = known
        if vendor is None:
            return None
        held = not self.decision.allows_vendor(vendor.id, vendor.category)
        note_third_parties(self.catalog, "css", [vendor], hosts, held, self.noted)
        if not held:
            return None
        self.held.append(vendor.id)
        return held_token(token, vendor.category, vendor.id)

    def inline_script(self, tag: bytes, body: bytes, signatures: list[bytes] | None = None, *,
                      too_long: bool = False, kind: str = "script", base: str = "") -> bytes:
        """The open tag of an inline script, decided on its body (``signatures``: the catalog signatures a
        caller found in it already, in order). ``too_long``: the body is only the script's first part.
        ``kind`` is "svg:script" for an svg script (which may also load from its ``href``)."""
        vendors: list[VendorRule] | None = None
        if signatures is not None:
            vendors = []
            for signature in signatures:
                vendor = self.catalog.vendor_for_signature(signature)
                if vendor not in vendors:
                    vendors.append(vendor)
        if not too_long and len(body) <= LOADER_SCAN_BYTES:
            # a generic loader of a third party the catalog has no snippet for (see inline_loaders)
            if vendors is None:
                vendors = self.catalog.vendors_for_inline_bytes(body)
            vendors.extend(v for v in loader_vendors(body, self.catalog, self.decision.site) if v not in vendors)
        held = hold_back_tag(tag, kind, self.catalog, self.decision, body, inline_vendors=vendors, base=base,
                             noted=self.noted)
        if held is not None:
            self.held.append(held.vendor.id)
            return held.tag
        if too_long:
            # Nothing disallowed in its first part: a long first-party script (app state, a bundle) runs as it
            # is. Making it inert would break the page for every visitor, even after "accept all"; a tracker's
            # loader or queue call shows in its first part. Counted, so the owner sees how often it happens.
            metrics.inc("rewrite_passthrough_total", reason="inline_script_too_long")
            self.cacheable = False
        return tag

    def inert_tag(self, tag: bytes, kind: str, reason: str) -> bytes:
        """Fail closed on a whole start tag that cannot be judged."""
        name_end, _ = parse_attributes(tag)
        return tag[:name_end] + self.inert_attributes(kind, reason) + tag[name_end:]

    def inert_attributes(self, kind: str | None, reason: str) -> bytes:
        """Fail closed on a tag that cannot be read: what to write right after its name. Counted, and never
        cached (the decision depends on where the buffer limit fell). ``kind`` None: a tag that fetches
        nothing by its own attributes, whose style attribute alone is made inert.

        The inert form hides the tag's own URLs from the DOM (first duplicate attribute wins), so the banner
        cannot restore it in place: once the visitor allowed everything, the page comes with the tag as it
        is from the next view on (nothing is left to hold back)."""
        self.cacheable = False
        if self.allows_everything():
            metrics.inc("rewrite_passthrough_total", reason=reason)
            return b""
        metrics.inc("rewrite_bailouts_total", reason=reason)
        return (INERT_ATTRS[kind] if kind is not None else BAILOUT_MARK) + INERT_STYLE
