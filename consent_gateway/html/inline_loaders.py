"""Generic loaders in inline scripts: a short script that creates an element (or writes a tag, or a tracking
pixel ``new Image``) from a literal third-party URL loads that third party as surely as a ``<script src>``.

The catalog's inline signatures name the snippets of the vendors it knows; this reads the loaders of every
other one. A literal URL in a loading script is held back as:

* the catalog vendor of its URL (whatever the path: the catalog's hosts are trackers), or
* ``unclassified`` when its host is neither first party nor allowed, and only when the URL is a script
  (its path ends in ``.js``, or it is a ``src=`` in written markup): the same rule as for ``<script src>``
  of that host; or, in a script that creates a ``<script>`` element or a pixel (``new Image``), any URL of
  such a host, even a bare ``host.name/path`` the loader joins to a scheme at run time (what such a loader
  loads is that host's code or beacon, whatever the path looks like), when the script is a snippet (up to
  ``SNIPPET_BYTES``) and the URL is not a folder (``…/``: a base the script appends to, such as WordPress's
  emoji images) or a static asset (an image, a style sheet, a font) that no script loader runs.

A URL split across string literals is read whole, as a loader builds it: adjacent literals joined with ``+``
(``'//c.evidon.com/' + 'sitenotice/x.js'``, ``"https://" + "host/path"``), and a URL literal bound to a name
joined with a literal further on (``var cdn = '//c.evidon.com/'; … cdn + 'geo/country.js'``: each such
``name + '…'`` is one more URL of the script, judged by the rules above).

What is not held: a long script (more than ``LOADER_SCAN_BYTES``: an app, its state or a bundle, where a
tracker host is a string in a config map), a script with no loading construct (a CSP list, a link map), a
URL in a comment or built from run-time values, and first-party or allowed hosts.
"""

from __future__ import annotations

import re

from ..catalog import URL_KINDS, Catalog, VendorRule

#: loader snippets are a few hundred bytes; longer scripts are apps whose strings merely mention hosts
LOADER_SCAN_BYTES = 16384
#: a loader snippet proper; longer scripts that create a script element are apps naming links and images
SNIPPET_BYTES = 8192
#: what makes a script load something by itself: one of these strings, or one of the patterns below (a
#: string is looked for first: `re` tries an alternation of words at almost every byte of a script)
_LOAD_WORDS = (b"createElement", b"document.write", b"getScript(", b"sendBeacon(")
_LOAD_PATTERNS = (
    (b"Image", re.compile(rb"new\s+Image\b")),
    (b".src", re.compile(rb"\.src\s*=")),
    (b"setAttribute(", re.compile(rb"setAttribute\(\s*['\"]src")),
)
#: what makes every third-party URL of a loading script a fetch: it creates a script or a pixel
_CREATES_SCRIPT_OR_PIXEL = re.compile(rb"createElement\(\s*['\"]script['\"]|getScript\(|new\s+Image\b")
_PIXEL = re.compile(rb"new\s+Image\b")
#: a folder, or the path of a static asset that a script loader does not run (an image counts for a pixel)
_FOLDER_OR_ASSET = re.compile(r"(?:/|\.(?:png|jpe?g|gif|svg|webp|ico|css|woff2?|ttf|otf|eot|html?))$", re.IGNORECASE)
_FOLDER_OR_PAGE_ASSET = re.compile(r"(?:/|\.(?:css|woff2?|ttf|otf|eot|html?))$", re.IGNORECASE)
#: a string literal that starts with a URL: absolute or protocol-relative (slashes maybe escaped "\\/"), or a
#: bare "host/path" (looked up in the catalog only); "src=" right before it (and after the previous literal
#: read): a tag's source in written markup. The pattern starts at the quote, which `re` finds quickly.
_URL_LITERAL = re.compile(
    rb"""['"]((?:https?:)?(?:\\?/){2})?([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9]"""
    rb"""(?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)(?::[0-9]+)?((?:\\?/)[^'"\s<>?#]*)?"""
)

#: the end of a string literal joined to the next one: ``' + '`` (the quotes may differ)
_JOIN = re.compile(rb"""['"]\s*\+\s*['"]""")
#: a name bound to the literal that follows (``cdn = '…'``; not a property such as ``s.src = '…'``)
_BOUND_NAME = re.compile(rb"(?<![\w$.])([A-Za-z_$][\w$]*)\s*=\s*$")
#: how far before a literal its name is looked for
_NAME_LOOKBACK = 64

#: a URL literal as read: (written as a tag's src=, has slashes, has a path, host, path)
Candidate = tuple[bool, bool, bool, str, str]


def loader_vendors(body: bytes, catalog: Catalog, site: str) -> list[VendorRule]:
    """The vendors (catalog or ``unclassified``) an inline script's literal URLs load, in order."""
    if len(body) > LOADER_SCAN_BYTES or not _loads(body):
        return []
    found: list[VendorRule] = []
    creates_script = len(body) <= SNIPPET_BYTES and _CREATES_SCRIPT_OR_PIXEL.search(body) is not None
    not_loaded = _FOLDER_OR_PAGE_ASSET if creates_script and _PIXEL.search(body) else _FOLDER_OR_ASSET
    for written_src, slashes, has_path, host, path in _url_literals(body):
        vendor = _catalog_vendor(catalog, f"https://{host}{path}")
        if vendor is None and (
            (slashes and (written_src or path.endswith(".js")))
            or (creates_script and has_path and not not_loaded.search(path) and (
                slashes
                # a bare "host.name/path" joined to a scheme at run time: a host of three labels or more, so
                # that a file name ("jquery.min.js/") or a property chain is not read as a host
                or (host.count(".") >= 2 and not host.endswith(".js"))))
        ):
            vendor = catalog.third_parties.classify(host, site, path)
        if vendor is not None and vendor not in found:
            found.append(vendor)
    return found


def _loads(body: bytes) -> bool:
    """Whether a script has a loading construct (see ``_LOAD_WORDS``)."""
    if any(word in body for word in _LOAD_WORDS):
        return True
    return any(word in body and pattern.search(body) is not None for word, pattern in _LOAD_PATTERNS)


def _url_literals(body: bytes) -> list[Candidate]:
    """The URL literals of a script, in order, those split across literals read whole (see the module doc)."""
    if _JOIN.search(body) is not None:
        body = _JOIN.sub(b"", body)  # 'a' + 'b' is the literal 'ab'
    found: list[Candidate] = []
    read_to = 0  # the end of the previous literal read: a "src=" before it is not this one's
    for match in _URL_LITERAL.finditer(body):
        slashes, raw_host, raw_path = match.groups()
        start = match.start()
        written_src = start - 4 >= read_to and body[start - 4 : start] == b"src="
        read_to = match.end()
        if not slashes and not raw_path:
            continue  # a dotted name ("jquery.min.js", "window.location"), not a URL
        host = raw_host.decode("ascii").lower()
        path = (raw_path or b"").replace(b"\\/", b"/").decode("ascii", "replace")
        found.append((written_src, slashes is not None, raw_path is not None, host, path or "/"))
        if slashes and not written_src and body[match.end() : match.end() + 1] in (b"'", b'"'):
            # the whole literal is a URL: a name bound to it, joined with a literal, is a URL too
            bound = _BOUND_NAME.search(body, max(0, match.start() - _NAME_LOOKBACK), match.start())
            if bound is not None:
                name = re.escape(bound.group(1))
                for use in re.finditer(rb"(?<![\w$.])" + name + rb"""\s*\+\s*['"]([^'"\s?#]*)""", body[match.end() :]):
                    suffix = use.group(1).replace(b"\\/", b"/").decode("ascii", "replace")
                    if suffix and (path or suffix.startswith("/")):
                        found.append((False, True, True, host, path + suffix))
    return found


def _catalog_vendor(catalog: Catalog, url: str) -> VendorRule | None:
    for url_kind in URL_KINDS:
        vendor = catalog.vendor_for_url(url, url_kind)
        if vendor is not None:
            return vendor
    return None
