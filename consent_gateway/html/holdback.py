"""Per-tag decision and rewrite: does this element fetch or run something from a tracker the visitor has not
allowed, and if so, what does its held-back form look like?

The held-back form is what the banner restores from (vanilla-cookieconsent's convention, generalised): every
attribute through which the element fetches (``src``, ``srcset``, ``href``, ``poster``, ``data``, ``ping``,
``srcdoc``, ``background``, a refresh's ``content``…) is renamed ``data-cg-<name>``, and ``data-category`` /
``data-cg-vendor`` say whose it is. A script also gets ``type="text/plain"`` (an original ``type`` becomes
``data-cg-type``). Every other attribute (nonce, async, integrity, width, …) is kept byte for byte. The new
attributes are inserted right after the tag name: in HTML the first of two duplicate attributes wins, so
nothing later in the tag can override them.

URLs are read as the browser's URL parser reads them (``urls``), against the ``<base href>`` in force.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ..catalog import URL_KINDS, Catalog, VendorRule
from ..compiled import native_function
from ..decision import Decision
from ..urls import attribute_url, host_of, resolve_url

#: one attribute, with the tokenizer's rules: a quote only opens a value right after "=", a name may start
#: with "=" or contain quotes, an unquoted value runs to whitespace or ">"
_ATTR_RE = re.compile(
    rb"[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"([^\"]*+)\"|'([^']*+)'|([^\t\n\f\r >]*+)))?+"
)
_NAME_END_RE = re.compile(rb"<[^\t\n\f\r />]*")

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
#: <link rel> tokens that make the browser fetch ``href`` (or contact its host) without any script
LINK_FETCH_RELS = frozenset(
    {b"preload", b"prefetch", b"preconnect", b"dns-prefetch", b"modulepreload", b"prerender", b"stylesheet",
     # the page's icon (also "shortcut icon") and the ones a browser fetches for bookmarks, and the manifest
     b"icon", b"apple-touch-icon", b"apple-touch-icon-precomposed", b"mask-icon", b"manifest"}
)


class ElementKind(NamedTuple):
    """How one kind of element fetches: the catalog's URL kind its URLs are looked up as, and its attributes
    holding URLs (renamed ``data-cg-<name>`` when held back)."""

    url_kind: str
    #: attributes holding one URL
    urls: tuple[bytes, ...]
    #: looked up in its own URL kind's table only (the kinds the catalog was written for)
    strict: bool = False
    #: attributes holding a srcset (URLs with descriptors, comma-separated)
    srcsets: tuple[bytes, ...] = ()
    #: other attributes renamed when held back (they would change what the restored element loads)
    renamed: tuple[bytes, ...] = ()


#: Every element that fetches or runs, by kind. A kind is the lowercased tag name, except in svg content:
#: "svg:script" and "svg:image" (HTML reads an ``<image>`` tag as ``<img>``).
ELEMENT_KINDS: dict[str, ElementKind] = {
    "script": ElementKind("script", (b"src",), True, renamed=(b"type",)),
    # src too: where the tokenizer's view of foreign content and the tree builder's differ ("<math></a>"
    # ends it for the tree builder), the element is an HTML script, and over-matching fails closed
    "svg:script": ElementKind("script", (b"href", b"xlink:href", b"src"), renamed=(b"type",)),
    "iframe": ElementKind("iframe", (b"src",), True, renamed=(b"srcdoc",)),
    "frame": ElementKind("iframe", (b"src",)),
    # codebase: the base of data's URL in old plugins; archive: a space-separated list of URLs
    "object": ElementKind("iframe", (b"data", b"codebase"), renamed=(b"archive",)),
    "embed": ElementKind("iframe", (b"src",)),
    "meta": ElementKind("iframe", (), renamed=(b"content",)),  # http-equiv=refresh: navigates to its URL
    "img": ElementKind("img", (b"src",), True, (b"srcset",)),
    # src and srcset too, as for svg:script: where the tree builder left the svg content, it is an <img>
    "svg:image": ElementKind("img", (b"href", b"xlink:href", b"src"), srcsets=(b"srcset",)),
    "video": ElementKind("img", (b"src", b"poster")),
    "audio": ElementKind("img", (b"src",)),
    "source": ElementKind("img", (b"src",), srcsets=(b"srcset",)),
    "track": ElementKind("img", (b"src",)),
    "input": ElementKind("img", (b"src",)),  # type=image only
    "body": ElementKind("img", (b"background",)),
    # the legacy background image of a table or a cell (browsers still fetch it)
    "table": ElementKind("img", (b"background",)),
    "td": ElementKind("img", (b"background",)),
    "th": ElementKind("img", (b"background",)),
    # svg: a symbol or a filter image from another document (a same-document "#id" fetches nothing)
    "use": ElementKind("img", (b"href", b"xlink:href")),
    "feimage": ElementKind("img", (b"href", b"xlink:href")),
    "a": ElementKind("img", (), renamed=(b"ping",)),  # each URL of ping gets a POST when the link is followed
    "link": ElementKind("link", (b"href",), srcsets=(b"imagesrcset",)),
}
#: the tag names of the kinds (what a tokenizer looks for)
HOLD_TAG_NAMES = tuple(dict.fromkeys(kind.rpartition(":")[2] for kind in ELEMENT_KINDS))

_RENAMES: dict[str, dict[bytes, bytes]] = {
    kind: {name: b"data-cg-" + name for name in (*spec.urls, *spec.srcsets, *spec.renamed)}
    for kind, spec in ELEMENT_KINDS.items()
}
#: what a bail-out writes after the tag name to make a tag inert without reading it (first duplicate wins)
INERT_ATTRS: dict[str, bytes] = {
    "script": b' type="text/plain" data-cg-bailout=""',
    "iframe": b' src="about:blank" srcdoc="" data-cg-bailout=""',
    "img": b' src="data:," srcset="" data-cg-bailout=""',
    "link": b' rel="cg-held" href="" data-cg-bailout=""',
    "image": b' src="data:," href="" xlink:href="" data-cg-bailout=""',
    "frame": b' src="about:blank" data-cg-bailout=""',
    "object": b' data="about:blank" codebase="" archive="" data-cg-bailout=""',
    "embed": b' src="about:blank" data-cg-bailout=""',
    "video": b' src="" poster="" data-cg-bailout=""',
    "audio": b' src="" data-cg-bailout=""',
    "source": b' src="" srcset="" data-cg-bailout=""',
    "track": b' src="" data-cg-bailout=""',
    "input": b' src="" data-cg-bailout=""',
    "body": b' background="" data-cg-bailout=""',
    "table": b' background="" data-cg-bailout=""',
    "td": b' background="" data-cg-bailout=""',
    "th": b' background="" data-cg-bailout=""',
    "use": b' href="" xlink:href="" data-cg-bailout=""',
    "feimage": b' href="" xlink:href="" data-cg-bailout=""',
    "meta": b' http-equiv="" data-cg-bailout=""',
    "a": b' ping="" data-cg-bailout=""',
}
#: what a bail-out writes after the name of any other tag it cannot read
BAILOUT_MARK = b' data-cg-bailout=""'
#: and after every name, tracker-capable or not: its style attribute (CSS url(), @import) is not read either
INERT_STYLE = b' style=""'
#: a refresh's content: the delay, then "; url=" (each part optional) and the URL, maybe quoted
_REFRESH_RE = re.compile(
    r"[\t\n\f\r ]*[0-9.]*[\t\n\f\r ]*[;,]?[\t\n\f\r ]*(?:[uU][rR][lL][\t\n\f\r ]*=[\t\n\f\r ]*)?(.*)", re.DOTALL
)
_ASCII_WS = " \t\n\f\r"


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


#: the last tag read and what was read: a script's start tag is read by the tokenizer, then by its decision
_last_parsed: tuple[bytes, tuple[int, list[Attribute]]] = (b"", (0, []))


def parse_attributes(tag: bytes) -> tuple[int, list[Attribute]]:
    """(end of the tag name, attributes) of a complete start tag ``<name …>``. The list is shared with other
    callers asking for the same tag: read it, never change it."""
    global _last_parsed
    last = _last_parsed
    if last[0] == tag:
        return last[1]
    parsed = _parse_attributes(tag) if _native_parse is None else _native_parse(tag, Attribute)
    _last_parsed = (tag, parsed)
    return parsed


def _parse_attributes(tag: bytes) -> tuple[int, list[Attribute]]:
    """The reference reader (the pure path's); ``_attrs.c`` reads the same in one pass on the compiled one."""
    name_match = _NAME_END_RE.match(tag)
    name_end = name_match.end() if name_match else 1
    attrs: list[Attribute] = []
    pos = name_end
    # one attribute after the other: a match must start where the previous one ended
    for m in _ATTR_RE.finditer(tag, name_end, len(tag) - 1):  # up to the closing ">"
        if m.start() != pos:
            break
        name, double, single, unquoted = m.groups()
        start, end = m.span(1)
        attrs.append(Attribute(name.lower(), start, end,
                               double if double is not None else single if single is not None else unquoted))
        pos = m.end()
    return name_end, attrs


#: the C attribute reader built beside the compiled core (``_attrs.c``); None on the pure path
_native_parse: Callable[[bytes, type[Attribute]], tuple[int, list[Attribute]]] | None = native_function(
    "parse_attributes")


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


#: what may make a tag load from another host than the page's: two slashes (absolute or protocol-relative;
#: a backslash counts as one, tabs and newlines are stripped) or an entity that may hide them
_OTHER_HOST_HINT = re.compile(rb"[/\\][\t\n\r]*+[/\\]|&")
#: a <link> fetches only with a rel token of LINK_FETCH_RELS: without one among its (ASCII-lowercased) bytes, it
#: fetches nothing. The tokens that hold no other one (`bytes.find` each: `re` is slow on a case-insensitive
#: alternation)
_LINK_FETCH_HINTS = tuple(
    sorted(rel for rel in LINK_FETCH_RELS if not any(other != rel and other in rel for other in LINK_FETCH_RELS))
)
#: the pseudo-vendor of hosts nobody classified (thirdparty.UNCLASSIFIED)
_UNCLASSIFIED = "unclassified"
#: the inventory's name for a vendor an inline script names without a host (inventory/records.py)
INLINE_PREFIX = "inline:"


def _has_link_fetch_hint(tag: bytes) -> bool:
    lowered = tag.lower()
    return any(rel in lowered for rel in _LINK_FETCH_HINTS)


def _first_disallowed(vendors: list[VendorRule], decision: Decision) -> VendorRule | None:
    for vendor in vendors:
        if not decision.allows_vendor(vendor.id, vendor.category):
            return vendor
    return None


def note_third_parties(catalog: Catalog, kind: str, vendors: list[VendorRule],
                        hosts: list[tuple[VendorRule, str]] | None, held: bool,
                        noted: list[tuple[str, str, str, bool]] | None) -> None:
    """Note each third party an element contacts, held back or let through: every unclassified host is
    counted (``note_seen``); ``noted`` (host, vendor id, element kind, held) feeds the inventory and the chunk
    cache, which notes them again on each hit. ``hosts``: the catalog vendors' URL hosts; a vendor with none
    (an inline snippet) is noted as ``inline:<vendor id>``."""
    for vendor in vendors:
        if vendor.id == _UNCLASSIFIED:
            catalog.third_parties.note_seen(vendor.name, held)
            if noted is not None:
                noted.append((vendor.name, _UNCLASSIFIED, kind, held))
    if noted is None:
        return
    with_host: set[str] = set()
    if hosts:
        for vendor, host in hosts:
            if vendor.id != _UNCLASSIFIED:
                noted.append((host, vendor.id, kind, held))
                with_host.add(vendor.id)
    for vendor in vendors:
        # an inline snippet (or an iframe's inline document) names a vendor but no host of its own
        if vendor.id != _UNCLASSIFIED and vendor.id not in with_host:
            noted.append((INLINE_PREFIX + vendor.id, vendor.id, kind, held))


def _refresh_url(content: bytes) -> bytes:
    """The URL of a ``<meta http-equiv=refresh>`` content ("5; url='/next'"), b"" for a plain reload."""
    text = _decode(content)
    match = _REFRESH_RE.match(text)
    url = match.group(1) if match else ""
    if url[:1] in ("'", '"'):
        url = url[1:].partition(url[0])[0]
    return url.encode()


def _vendor_for_url(catalog: Catalog, url: str, spec: ElementKind, strict: bool) -> VendorRule | None:
    """The vendor a (resolved) URL belongs to, for an element of this kind. Scripts, iframes and images are
    looked up in their own tables (``strict``: the catalog was written for them); any other element (a
    video, an ``<a ping>``…), and any URL made absolute by a ``<base>``, in all of them, its own kind's
    first: a tracker host is a tracker whatever element loads from it."""
    vendor = catalog.vendor_for_url(url, spec.url_kind)
    if vendor is not None or strict:
        return vendor
    for url_kind in URL_KINDS:
        if url_kind != spec.url_kind:
            vendor = catalog.vendor_for_url(url, url_kind)
            if vendor is not None:
                return vendor
    return None


def _path_of(url: str) -> str:
    """The path of an absolute or protocol-relative URL ("" when it has none), for allow-list prefixes."""
    rest = url.partition("//")[2]
    slash = rest.find("/")
    return rest[slash:].partition("?")[0].partition("#")[0] if slash != -1 else ""


def fetched_urls(kind: str, attrs: list[Attribute]) -> list[bytes]:
    """The raw URL values this element would fetch from (entity-encoded, not yet resolved), in order."""
    spec = ELEMENT_KINDS[kind]
    if kind == "input":
        value = first_value(attrs, b"type")
        if value is None or _decode(value).strip(_ASCII_WS).lower() != "image":
            return []
    elif kind == "link":
        rel = first_value(attrs, b"rel")
        if not rel or not any(token in LINK_FETCH_RELS for token in rel.lower().split()):
            return []
    elif kind == "meta":
        equiv = first_value(attrs, b"http-equiv")
        content = first_value(attrs, b"content")
        if equiv is None or content is None or _decode(equiv).strip(_ASCII_WS).lower() != "refresh":
            return []
        return [_refresh_url(content)]
    elif kind == "a":
        ping = first_value(attrs, b"ping")
        return [url.encode() for url in _decode(ping).split()] if ping else []
    elif kind == "object":
        archive = first_value(attrs, b"archive")
        if archive:
            return [*(v for name in spec.urls if (v := first_value(attrs, name))),
                    *(url.encode() for url in _decode(archive).split())]
    urls = [value for name in spec.urls if (value := first_value(attrs, name))]
    for name in spec.srcsets:
        srcset = first_value(attrs, name)
        if srcset:
            urls.extend(url.encode() for url in _srcset_urls(srcset))
    return urls


def _vendor_of_raw_url(catalog: Catalog, raw: bytes, spec: ElementKind, base: str, site: str,
                       catalog_free: bool = False, hosts: list[tuple[VendorRule, str]] | None = None,
                       ) -> VendorRule | None:
    """The vendor of one attribute's URL: the catalog's, else the classification of a host it does not know
    (first party or allowed: None; else the pseudo-vendor "unclassified"). ``catalog_free``: the caller
    proved that no catalog pattern can match (see ``hold_back_tag``), so only the host is classified."""
    return vendor_of_url(catalog, attribute_url(raw) if raw else "", spec, base, site, catalog_free, hosts)


def vendor_of_url(catalog: Catalog, url: str, spec: ElementKind, base: str, site: str,
                  catalog_free: bool = False, hosts: list[tuple[VendorRule, str]] | None = None,
                  ) -> VendorRule | None:
    """The vendor of one cleaned URL (see ``_vendor_of_raw_url``)."""
    if base or not url.isascii():  # else the catalog reads it the same way (and caches what it read)
        url = resolve_url(url, base)
    if not url:
        return None
    if catalog_free:
        return catalog.third_parties.classify(host_of(url), site, _path_of(url))
    vendor = _vendor_for_url(catalog, url, spec, spec.strict and not base)
    if vendor is None:
        return catalog.third_parties.classify(host_of(url), site, _path_of(url))
    if hosts is not None:
        host = host_of(url) or site  # a relative URL (a self-hosted tool): the site's own
        if host:
            hosts.append((vendor, host))
    return vendor


def vendors_of_tag(kind: str, attrs: list[Attribute], catalog: Catalog, inline_body: bytes | None = None,
                   inline_vendors: list[VendorRule] | None = None, *, base: str = "", site: str = "",
                   srcdoc_vendors: Callable[[str], list[VendorRule]] | None = None,
                   catalog_free: bool = False, hosts: list[tuple[VendorRule, str]] | None = None,
                   ) -> list[VendorRule]:
    """Every catalog vendor a start tag (or an inline script body) would contact or run.

    ``base`` is the ``<base href>`` in force (``urls.base_url``); ``srcdoc_vendors`` reads an iframe's
    inline document (it is a page of its own: the caller rewrites it as one). A URL host the catalog does
    not know is classified by ``catalog.third_parties`` against ``site`` (the page's registrable domain).
    ``catalog_free``: no catalog pattern can match a URL of this tag (``hold_back_tag`` proved it).
    ``hosts`` receives (catalog vendor, URL host) for each URL a catalog vendor's.
    """
    found: list[VendorRule] = []
    spec = ELEMENT_KINDS[kind]
    if spec.url_kind == "script":
        if not script_is_executable(attrs):
            return found
        if not any(first_value(attrs, name) is not None for name in spec.urls):
            if inline_vendors is not None:
                found.extend(inline_vendors)
            elif inline_body:
                found.extend(catalog.vendors_for_inline_bytes(inline_body))
            return found
    for raw in fetched_urls(kind, attrs):
        vendor = _vendor_of_raw_url(catalog, raw, spec, base, site, catalog_free, hosts)
        if vendor is not None and vendor not in found:
            found.append(vendor)
    if kind == "iframe" and srcdoc_vendors is not None:
        srcdoc = first_value(attrs, b"srcdoc")
        if srcdoc is not None:
            found.extend(v for v in srcdoc_vendors(_decode(srcdoc)) if v not in found)
    return found


def hold_back_tag(tag: bytes, kind: str, catalog: Catalog, decision: Decision,
                  inline_body: bytes | None = None, *, may_name_vendor: bool | None = None,
                  inline_vendors: list[VendorRule] | None = None, base: str = "",
                  srcdoc_vendors: Callable[[str], list[VendorRule]] | None = None,
                  noted: list[tuple[str, str, str, bool]] | None = None) -> HeldBack | None:
    """The held-back form of a complete start tag, or None when the decision lets it through.

    ``kind`` is a key of ``ELEMENT_KINDS`` (the lowercased tag name, "svg:script" or "svg:image");
    ``inline_body`` is the text of an inline script, matched against the catalog's inline signatures.
    ``may_name_vendor`` is a caller's pre-check (False: no catalog string in the tag); None runs the
    catalog's own, unless a string search cannot judge the tag: after a ``<base>`` that names a vendor, and
    for an iframe's srcdoc. ``inline_vendors`` are the vendors of the inline body's signatures when a caller
    found them already, in order of appearance. ``base`` and ``srcdoc_vendors``: see ``vendors_of_tag``.
    """
    catalog_free = False
    if inline_body is None:
        if kind == "link" and not _has_link_fetch_hint(tag):
            return None  # canonical, alternate, icon…: no fetching rel token (see fetched_urls)
        if (base and catalog.tag_may_name_vendor(base.encode())) or (
            kind == "iframe" and srcdoc_vendors is not None and b"srcdoc" in tag.lower()
        ):
            may_name_vendor = True
        elif may_name_vendor is None:
            may_name_vendor = catalog.tag_may_name_vendor(tag)
        if not may_name_vendor and catalog.third_parties.mode != "allow":
            # no catalog string in it, but it may load from a host nobody classified
            may_name_vendor = bool(base) or _OTHER_HOST_HINT.search(tag) is not None
            # Without a <base>, in an ASCII tag free of escapes (the pre-checks send "&", "%", "\\" and
            # stripped whitespace to the catalog), every URL's host and path are bytes of the tag: with no
            # catalog string in it, no catalog pattern can match, so only hosts are classified (the common
            # case of a page's own and CDN URLs, and the costly one).
            catalog_free = may_name_vendor and not base and tag.isascii()
        if not may_name_vendor:
            return None
    name_end, attrs = parse_attributes(tag)
    hosts: list[tuple[VendorRule, str]] | None = [] if noted is not None and not catalog_free else None
    vendors = vendors_of_tag(kind, attrs, catalog, inline_body, inline_vendors, base=base, site=decision.site,
                             srcdoc_vendors=srcdoc_vendors, catalog_free=catalog_free, hosts=hosts)
    vendor = _first_disallowed(vendors, decision)
    note_third_parties(catalog, kind, vendors, hosts, vendor is not None, noted)
    if vendor is None:
        return None
    return HeldBack(rewrite_held_back(tag, kind, name_end, attrs, vendor.category, vendor.id), vendor)


def rewrite_held_back(tag: bytes, kind: str, name_end: int, attrs: list[Attribute], category: str,
                      vendor_id: str) -> bytes:
    marks = (
        f' data-category="{html.escape(category, quote=True)}" data-cg-vendor="{html.escape(vendor_id, quote=True)}"'
    ).encode()
    if ELEMENT_KINDS[kind].url_kind == "script":
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
