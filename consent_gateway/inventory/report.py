"""``POST <prefix>/inventory-report``: the cookie and storage key *names* present in a visitor's browser.

A server sees every ``Set-Cookie`` but not what scripts write (``document.cookie``, ``localStorage``,
``sessionStorage``). After the visitor made a choice, pages load ``inventory-report.js`` (see
``Banner.head_html``), which posts the names it finds — never a value — once; the answer sets
:data:`REPORTED_COOKIE` for a day, and pages do not load the reporter while it is there: at most one report
per visitor per day. The store enforces it too: a report is counted only when its consent id claims the
day (``ConsentLog.claim``, shared by every instance), so a browser that drops the cookie counts once.

Checked like every other POST route: same origin only (403), JSON only (415), a size limit (413), a rate
limit per client address (429), strict JSON (400), a valid consent cookie (403: names are reported only
after a choice), and a fixed shape ``{"cookie": [names], "localStorage": [...], "sessionStorage": [...]}``.
The gateway's own names (the consent cookie, ``cg_*``) are not inventoried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Protocol

from starlette.requests import Request
from starlette.responses import Response

from consent_gateway.catalog import Catalog
from consent_gateway.catalog_schema import VendorRule
from consent_gateway.choice_body import read_body
from consent_gateway.config import Config
from consent_gateway.csrf import is_same_origin
from consent_gateway.errors import APIError, StoreUnavailable
from consent_gateway.inventory.records import AREAS, MAX_NAME_CHARS
from consent_gateway.jsonin import parse_json
from consent_gateway.limits import RateLimiter
from consent_gateway.visitor import VisitorReader

logger = logging.getLogger("consent_gateway.inventory")

#: set by a report for a day: pages do not load the reporter while the browser holds it
REPORTED_COOKIE: Final = "cg_inv"
REPORT_INTERVAL_SECONDS: Final = 24 * 3600
#: names taken per area from one report
MAX_NAMES_PER_AREA: Final = 200
#: the gateway's own names, never inventoried as the site's
OWN_PREFIX: Final = "cg_"


class NameSightings(Protocol):
    def names_reported(self, area: str, names: Iterable[tuple[str, str]]) -> None: ...


#: ``ConsentLog.claim``: True the first time a key is claimed while its claim lives
Claim = Callable[[str, float], Awaitable[bool]]


class _StorageIndex:
    """The vendor of a storage key name, by the catalog's ``storage`` rules (exact names, then prefixes)."""

    def __init__(self, vendors: Iterable[VendorRule]) -> None:
        self._exact: dict[str, str] = {}
        self._prefixes: list[tuple[str, str]] = []
        for vendor in vendors:
            for rule in vendor.storage:
                if rule.pattern.endswith("*"):
                    self._prefixes.append((rule.pattern[:-1], vendor.id))
                else:
                    self._exact.setdefault(rule.pattern, vendor.id)
        self._prefixes.sort(key=lambda item: -len(item[0]))

    def vendor(self, name: str) -> str:
        found = self._exact.get(name)
        if found is not None:
            return found
        return next((vendor for prefix, vendor in self._prefixes if name.startswith(prefix)), "")


def parse_report(data: object) -> dict[str, list[str]]:
    """The names of a report body by area (each name once); `APIError` 400 for anything else."""
    if not isinstance(data, dict):
        raise APIError(400, "invalid_type", "the body must be a JSON object")
    names: dict[str, list[str]] = {}
    for area, raw in data.items():
        if area not in AREAS:
            raise APIError(400, "unknown_field", f"unknown field {area!r} (expected: {', '.join(AREAS)})")
        if not isinstance(raw, list) or len(raw) > MAX_NAMES_PER_AREA:
            raise APIError(400, "invalid_type", f"{area} must be a list of at most {MAX_NAMES_PER_AREA} names")
        for name in raw:
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
                raise APIError(
                    400, "invalid_name", f"each name in {area} must be a string of 1 to {MAX_NAME_CHARS} chars"
                )
        names[area] = list(dict.fromkeys(raw))
    return names


class InventoryReportEndpoint:
    """Takes the banner's name reports: one per gateway."""

    def __init__(self, config: Config, catalog: Catalog, visitors: VisitorReader, sightings: NameSightings,
                 claim: Claim | None = None) -> None:
        """:param claim: the store's single-use claims (one report per consent id and UTC day); None: the
        cookie alone limits reports."""
        self.claim = claim
        self.catalog = catalog
        self.visitors = visitors
        self.sightings = sightings
        self.consent_cookie = config.cookie.name
        self.max_body_bytes = config.inventory.report_max_body_bytes
        rate = config.inventory.report_rate_per_minute
        self.rate_limiter = RateLimiter(rate, config.inventory.report_rate_burst) if rate else None
        self._storage = _StorageIndex(catalog.vendors.values())

    def use_catalog(self, catalog: Catalog) -> None:
        """Classify names by a new catalog (the privacy team's classifications changed it)."""
        self.catalog = catalog
        self._storage = _StorageIndex(catalog.vendors.values())

    async def handle(self, request: Request) -> Response:
        if self.rate_limiter is not None:
            address = self.visitors.client_ip(request.scope) or "unknown"
            refused = self.rate_limiter.refusal(address, reason="inventory_report_rate", what="reports")
            if refused is not None:
                return refused
        if not is_same_origin(request):
            raise APIError(403, "cross_site_request", "reports must come from this site's own pages")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise APIError(415, "unsupported_media_type", "send the body as application/json")
        names = parse_report(parse_json(await read_body(request, self.max_body_bytes)))
        header = request.headers.get("cookie")
        record = self.visitors.record_from_cookie(header) if header else None
        if record is None:
            raise APIError(403, "no_consent", "names are reported only after a choice in the banner")
        if await self._first_today(record.consent_id):
            for area, found in names.items():
                self.sightings.names_reported(area, self._classified(area, found))
        response = Response(status_code=204, headers={"cache-control": "no-store"})
        response.set_cookie(
            REPORTED_COOKIE, "1", max_age=REPORT_INTERVAL_SECONDS, path="/", httponly=True, samesite="lax",
            secure=self.visitors.cookie.secure(request.scope.get("scheme")),
        )  # fmt: skip
        return response

    async def _first_today(self, consent_id: str) -> bool:
        """Whether this visitor's report is the first of the UTC day (a store that does not answer: yes)."""
        if self.claim is None:
            return True
        day = time.strftime("%Y-%m-%d", time.gmtime())
        try:
            return await self.claim(f"inventory-report:{consent_id}:{day}", REPORT_INTERVAL_SECONDS)
        except (StoreUnavailable, OSError) as exc:
            logger.info("inventory report counted without the store's once-a-day check: %s", exc)
            return True

    def _classified(self, area: str, names: list[str]) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for name in names:
            if name == self.consent_cookie or name.startswith(OWN_PREFIX):
                continue
            found.append((name, self._vendor(area, name)))
        return found

    def _vendor(self, area: str, name: str) -> str:
        if area == "cookie":
            vendor = self.catalog.vendor_for_cookie(name)
            if vendor is not None:
                return vendor.id
        return self._storage.vendor(name)

