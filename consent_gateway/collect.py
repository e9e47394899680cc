"""First-party beacon forwarding, only with consent: ``/_consent/collect/{vendor}/…``.

The site (or the banner) sends analytics beacons to its own origin; the gateway forwards them to one of
the vendor's configured ``beacon_endpoints`` only when the visitor's decision allows that vendor. Without
consent the beacon is answered 204 and goes nowhere. The path after the vendor must name one of its
endpoints' paths exactly (or be empty: the first endpoint), so this is never an open proxy.

What reaches the vendor is the beacon and little else: no cookies, no forwarded-for address (the vendor
sees the gateway's address, not the visitor's), no Referer; only a few content headers pass. What comes
back is the status, content type and a bounded body — never a Set-Cookie on the site's domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import aiohttp
from starlette.requests import Request
from starlette.routing import Route
from yarl import URL

from . import metrics
from ._types import Receive, Scope, Send
from .catalog import Catalog, VendorRule
from .csrf import SAFE_METHODS, is_same_origin
from .decision import Decision
from .errors import APIError, UpstreamTimeout
from .proxy_websocket import map_upstream_error
from .responses import error_response

logger = logging.getLogger("consent_gateway.collect")

BEACON_MAX_BODY_BYTES = 64 * 1024
BEACON_MAX_RESPONSE_BYTES = 64 * 1024
BEACON_TIMEOUT_SECONDS = 5.0
#: The only visitor headers a vendor receives: what a beacon needs to be parsed, nothing that identifies.
FORWARDED_HEADERS = ("content-type", "content-encoding", "user-agent", "accept", "accept-language")

_COUNTER = "beacons_total"
# Declared here, next to the only code that counts it (metrics refuses undeclared counters).
metrics.COUNTERS.setdefault(_COUNTER, "Beacons at /_consent/collect, by vendor and outcome.")


class BeaconForwarder:
    """The ASGI endpoint behind ``collect_route``; one per gateway, holding nothing per request.

    :param catalog: the merged vendor catalog (or a plain ``{id: VendorRule}`` mapping).
    :param read_decision: the visitor's decision for this request (``VisitorReader.read``).
    :param session_factory: returns the aiohttp session to forward with; by default the forwarder makes
        its own (no cookie jar) on first use and closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        catalog: Catalog | Mapping[str, VendorRule],
        read_decision: Callable[[Scope], Decision],
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        *,
        timeout_seconds: float = BEACON_TIMEOUT_SECONDS,
        max_body_bytes: int = BEACON_MAX_BODY_BYTES,
    ) -> None:
        self.vendors: Mapping[str, VendorRule] = catalog.vendors if isinstance(catalog, Catalog) else catalog
        self.read_decision = read_decision
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_body_bytes = max_body_bytes
        self._session_factory = session_factory
        self._own_session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._session_factory is not None:
            return self._session_factory()
        if self._own_session is None or self._own_session.closed:
            self._own_session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Content-Type"),
                timeout=self.timeout,
            )
        return self._own_session

    async def aclose(self) -> None:
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._forward(scope, receive, send)
        except APIError as exc:  # raised before anything was sent
            await error_response(exc.status, exc.code, exc.message)(scope, receive, send)

    def _endpoint(self, scope: Scope) -> tuple[VendorRule, URL]:
        params = scope.get("path_params", {})
        vendor = self.vendors.get(params.get("vendor", ""))
        if vendor is None:
            raise APIError(404, "unknown_vendor", "No vendor of that id is known to the gateway.")
        endpoint = _endpoint_for(vendor, params.get("rest", ""))
        if endpoint is None:
            raise APIError(404, "unknown_endpoint", f"Vendor {vendor.id!r} has no such beacon endpoint.")
        return vendor, endpoint

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        vendor, endpoint = self._endpoint(scope)
        method: str = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # A cross-site page must not feed the site's analytics.
        if not is_same_origin(Request(scope)):
            raise APIError(403, "cross_site", "Beacons are accepted from this site's own pages only.")
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            raise APIError(413, "body_too_large", f"A beacon is at most {self.max_body_bytes} bytes.")
        decision = self.read_decision(scope)
        if not decision.allows_vendor(vendor.id, vendor.category):
            # Fail closed, quietly: the page's script has nothing to do about a refusal.
            metrics.inc(_COUNTER, vendor=vendor.id, outcome="refused")
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        target = _with_query(endpoint, scope.get("query_string", b"").decode("latin-1"))
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        try:
            async with self._session().request(
                method,
                URL(target, encoded=True),
                headers=forwarded,
                data=body if method not in SAFE_METHODS else None,
                allow_redirects=False,
                timeout=self.timeout,
            ) as response:
                status = response.status
                content_type = response.headers.get("content-type", "")
                reply = await response.content.read(BEACON_MAX_RESPONSE_BYTES)
        except Exception as exc:  # every failure becomes a generic 502/504; details go to the log
            timeout = isinstance(map_upstream_error(exc), UpstreamTimeout)
            metrics.inc(_COUNTER, vendor=vendor.id, outcome="timeout" if timeout else "failed")
            logger.warning("beacon to %s (%s) failed: %r", vendor.id, endpoint.host, exc)
            if timeout:
                raise APIError(504, "vendor_timeout", "The vendor did not answer in time.") from exc
            raise APIError(502, "vendor_unavailable", "The vendor could not be reached.") from exc
        metrics.inc(_COUNTER, vendor=vendor.id, outcome="forwarded")
        await _send_reply(send, status, content_type, reply)


def collect_route(
    catalog: Catalog | Mapping[str, VendorRule],
    read_decision: Callable[[Scope], Decision],
    session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    *,
    prefix: str = "/_consent",
    timeout_seconds: float = BEACON_TIMEOUT_SECONDS,
    max_body_bytes: int = BEACON_MAX_BODY_BYTES,
) -> Route:
    """``{prefix}/collect/{vendor}{rest}`` for the gateway's router; ``route.endpoint.aclose()`` at shutdown."""
    forwarder = BeaconForwarder(
        catalog, read_decision, session_factory, timeout_seconds=timeout_seconds, max_body_bytes=max_body_bytes
    )
    return Route(f"{prefix}/collect/{{vendor}}{{rest:path}}", forwarder, methods=["GET", "POST"])


def _with_query(endpoint: URL, query: str) -> str:
    """The endpoint with the beacon's own query string after any the endpoint already has."""
    target = str(endpoint)
    if query:
        target += ("&" if endpoint.raw_query_string else "?") + query
    return target


async def _send_reply(send: Send, status: int, content_type: str, reply: bytes) -> None:
    """The vendor's status, content type and body, and nothing else of its headers (never a Set-Cookie)."""
    headers = [(b"cache-control", b"no-store")]
    if content_type and status not in (204, 304):
        headers.append((b"content-type", content_type.encode("latin-1")))
    if status in (204, 304) or 100 <= status < 200:
        reply = b""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


def _endpoint_for(vendor: VendorRule, rest: str) -> URL | None:
    endpoints = [URL(e) for e in vendor.beacon_endpoints]
    if not endpoints:
        return None
    if rest in ("", "/"):
        return endpoints[0]
    for endpoint in endpoints:
        if endpoint.path == rest or endpoint.raw_path == rest:
            return endpoint
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past ``limit`` bytes (a beacon is small)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)
