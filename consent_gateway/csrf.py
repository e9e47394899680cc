"""Same-origin check for the consent API's unsafe methods.

Browsers send `Sec-Fetch-Site` on every request; when it is there it decides. Older browsers send
`Origin` on cross-site POSTs, so it must then name this very host. A request with neither did not come
from a cross-site page (and the API only takes `application/json`, which a plain form cannot send).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.netloc.lower() == host.lower() and parts.scheme == request.url.scheme
