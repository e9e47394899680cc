"""Which host an element's URL really loads from, the way a browser's URL parser reads it (WHATWG URL).

The rewriter sees attribute values, not URLs: ``&#x68;ttps://t.example``, ``ht<TAB>tps://t.example``,
``\\\\t.example\\x.js``, ``//t.example/x.js`` and, after ``<base href="https://t.example/">``, a plain
``x.js`` all load from ``t.example``. Reading them more naively than the browser would let a tracker through,
so everything here errs towards finding a host: a form the browser might read either way (``https:t.example``
without a base of the same scheme) is read as a host.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

from .catalog import split_url

#: what the URL parser strips from both ends (C0 controls and space) and removes everywhere (tab, newline)
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = re.compile("[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
#: schemes whose URLs have a host (the others, data: javascript: about: blob: mailto:, fetch from no host)
SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})


def clean_url(value: str) -> str:
    """An attribute value (entities already decoded) as the URL parser first sees it: trimmed of C0
    controls and spaces, without tabs and newlines, backslashes as slashes (as for the special schemes)."""
    url = value.strip(_C0_AND_SPACE)
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TAB_NEWLINE.sub("", url)
    if "\\" not in url:
        return url
    match = _SCHEME.match(url)
    if match is not None and match.group(1).lower() not in SPECIAL_SCHEMES:
        return url  # a backslash means nothing special in data: or javascript:
    return url.replace("\\", "/") if "\\" in url else url


def attribute_url(raw: bytes) -> str:
    """The URL in a raw attribute value as the tokenizer hands it over: character references decoded."""
    text = raw.decode("utf-8", "replace")
    return clean_url(html.unescape(text) if "&" in text else text)


def base_url(href: str) -> str:
    """The base a ``<base href>`` gives the URLs after it: an absolute URL when it names a host, "" when it
    is relative (the page's own host, whatever its path) or has no host (``javascript:``, ``data:``)."""
    url = clean_url(href)
    if url.startswith("//"):
        return "https:" + url
    match = _SCHEME.match(url)
    if match is None or match.group(1).lower() not in SPECIAL_SCHEMES:
        return ""
    host = host_of(url)
    if not host:
        return ""
    # "https:t.example" or "https:/t.example": rebuilt as the browser would (its "ignore slashes" states)
    rest = url[match.end() :].lstrip("/")
    return f"{match.group(1).lower()}://{rest}"


def resolve_url(url: str, base: str) -> str:
    """The URL a browser loads for a cleaned URL after a ``<base>`` (from :func:`base_url`): ``//host/path?query``
    with an ASCII host when it has a host, else (relative, no base) the URL as it is, for the catalog's
    path patterns. Schemes without a host give ""."""
    match = _SCHEME.match(url)
    if match is not None and match.group(1).lower() not in SPECIAL_SCHEMES:
        return ""
    if base and not url.startswith("//"):
        # urljoin reads "https:x.js" against an https base as relative, as the URL parser does, and keeps
        # "http:t.example" against an https base absolute (its host is then read by split_url)
        url = urljoin(base, url)
    host, path, query = split_url(url)
    if not host:
        return url
    return f"//{_ascii_host(host)}{path}" + (f"?{query}" if query else "")


def host_of(url: str) -> str:
    """The lowercased ASCII host a URL loads from; "" for a relative URL or one with no host."""
    return _ascii_host(split_url(url)[0])


def _ascii_host(host: str) -> str:
    """A host as the URL parser's domain-to-ASCII step maps it: ``ｔ．example`` is ``t.example``."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host
