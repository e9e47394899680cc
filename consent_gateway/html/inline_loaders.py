"""Generic loaders in inline scripts: a short script that creates an element (or writes a tag, or a tracking
pixel ``new Image``) from a literal third-party URL loads that third party as surely as a ``<script src>``.

The catalog's inline signatures name the snippets of the vendors it knows; this reads the loaders of every
other one. A literal URL in a loading script is held back as:

* the catalog vendor of its URL (whatever the path: the catalog's hosts are trackers), or
* ``unclassified`` when its host is neither first party nor allowed, and only when the URL is a script
  (its path ends in ``.js``): the same rule as for ``<script src>`` of that host.

What is not held: a long script (more than ``LOADER_SCAN_BYTES``: an app, its state or a bundle, where a
tracker host is a string in a config map), a script with no loading construct (a CSP list, a link map), a
URL in a comment or built from parts, and first-party or allowed hosts.
"""

from __future__ import annotations

import re

from ..catalog import URL_KINDS, Catalog, VendorRule

#: loader snippets are a few hundred bytes; longer scripts are apps whose strings merely mention hosts
LOADER_SCAN_BYTES = 16384
#: what makes a script load something by itself
_LOADS = re.compile(
    rb"createElement|document\.write|new\s+Image\b|\.src\s*=|setAttribute\(\s*['\"]src|getScript\(|sendBeacon\("
)
#: a string literal that starts with a URL: absolute or protocol-relative (slashes maybe escaped "\\/"), or a
#: bare "host/path" (looked up in the catalog only); "src=" before it: a tag's source in written markup
_URL_LITERAL = re.compile(
    rb"""(src=)?['"]((?:https?:)?(?:\\?/){2})?([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9]"""
    rb"""(?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+)(?::[0-9]+)?((?:\\?/)[^'"\s<>?#]*)?"""
)


def loader_vendors(body: bytes, catalog: Catalog, site: str) -> list[VendorRule]:
    """The vendors (catalog or ``unclassified``) an inline script's literal URLs load, in order."""
    if len(body) > LOADER_SCAN_BYTES or not _LOADS.search(body):
        return []
    found: list[VendorRule] = []
    for match in _URL_LITERAL.finditer(body):
        written_src, slashes, raw_host, raw_path = match.groups()
        if not slashes and not raw_path:
            continue  # a dotted name ("jquery.min.js", "window.location"), not a URL
        host = raw_host.decode("ascii").lower()
        path = (raw_path or b"/").replace(b"\\/", b"/").decode("ascii", "replace")
        vendor = _catalog_vendor(catalog, f"https://{host}{path}")
        if vendor is None and slashes and (written_src or path.endswith(".js")):
            vendor = catalog.third_parties.classify(host, site, path)
        if vendor is not None and vendor not in found:
            found.append(vendor)
    return found


def _catalog_vendor(catalog: Catalog, url: str) -> VendorRule | None:
    for url_kind in URL_KINDS:
        vendor = catalog.vendor_for_url(url, url_kind)
        if vendor is not None:
            return vendor
    return None
