"""Same-origin check for the consent API's unsafe methods.

Browsers send `Sec-Fetch-Site` on every request; when it is there it decides. Older browsers send
`Origin` on cross-site POSTs, so it must then name this very host. A request with neither did not come
from a cross-site page (and the API only takes `application/json`, which a plain form cannot send).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def split_header_url(value: str | None) -> SplitResult | None:
    """A URL from a request header (`Origin`, `Referer`), or None when it is missing or malformed
    (`http://[` makes `urlsplit` raise): a visitor's header must never turn into a 500."""
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        return None
    return parts


def is_same_origin(request: Request) -> bool:
    if request.method in SAFE_METHODS:
        return True
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    parts = split_header_url(origin)
    if parts is None:
        return False
    host = request.headers.get("host", "")
    return parts.netloc.lower() == host.lower() and parts.scheme == request.scope.get("scheme", "http")
