"""Set-Cookie filtering: tracking cookies the visitor has not allowed never reach the browser.

Each cookie name is classified once through the catalog (then cached); a known vendor's cookie passes only
when the decision allows that vendor. Cookies the catalog does not know pass by default and are counted by
name so the owner sees them in the dashboard's inventory (`unknown_cookies = "block"` drops them). A granted
tracker's cookie that would live longer than `[cookie] tracker_max_age_days` (13 months, as the CNIL
recommends) has its Max-Age and Expires shortened to that. The consent cookie itself is set only by the
gateway's own routes, never by a proxied page.
"""

from __future__ import annotations

import time
from email.utils import formatdate, mktime_tz, parsedate_tz
from typing import TYPE_CHECKING, Protocol

from . import metrics
from .decision import Decision
from .visitor import parse_cookies

if TYPE_CHECKING:
    from .catalog import Catalog, VendorRule


class CookieSightings(Protocol):
    """Where each Set-Cookie the filter judged goes (the inventory's collector)."""

    def cookie_seen(self, name: str, attributes: dict[str, object], vendor: str, *, dropped: bool,
                    capped: bool = False) -> None: ...

#: Distinct unknown names counted by name; past this, "other" (random names must not grow the metrics).
MAX_UNKNOWN_NAMES = 500


class CookieFilter:
    def __init__(
        self,
        catalog: Catalog,
        consent_cookie_name: str,
        *,
        block_unknown: bool = False,
        tracker_max_age_seconds: int | None = None,
        exempt_categories: frozenset[str] = frozenset(),
    ) -> None:
        """:param tracker_max_age_seconds: the longest lifetime a tracker's cookie keeps (None: as set).
        :param exempt_categories: categories whose cookies are not trackers' (the strictly necessary)."""
        self.catalog = catalog
        self.consent_cookie = consent_cookie_name.encode("latin-1")
        self.block_unknown = block_unknown
        self.tracker_max_age_seconds = tracker_max_age_seconds
        self.exempt_categories = exempt_categories
        self._vendors: dict[tuple[bytes, bytes], VendorRule | None] = {}
        self._unknown_names: set[str] = set()
        #: told of every cookie judged (the inventory), when set
        self.sightings: CookieSightings | None = None

    def vendor_of(self, name: bytes, domain: bytes = b"") -> VendorRule | None:
        """The vendor of a cookie the response sets; ``domain`` is its Domain attribute (empty: host-only)."""
        key = (name, domain)
        try:
            return self._vendors[key]
        except KeyError:
            vendor = self.catalog.vendor_for_set_cookie(name.decode("latin-1"), domain.decode("latin-1"))
            if len(self._vendors) < 10_000:
                self._vendors[key] = vendor
            return vendor

    def filter(self, headers: list[tuple[bytes, bytes]], decision: Decision) -> list[tuple[bytes, bytes]]:
        kept: list[tuple[bytes, bytes]] = []
        for key, value in headers:
            if key != b"set-cookie":
                kept.append((key, value))
                continue
            name = value.split(b"=", 1)[0].strip()
            if name == self.consent_cookie:
                continue
            vendor = self.vendor_of(name, _domain_attribute(value))
            original, dropped = value, False
            if vendor is None:
                self._count_unknown(name.decode("latin-1"))
                dropped = self.block_unknown
            elif not decision.allows_vendor(vendor.id, vendor.category):
                metrics.inc("dropped_cookies_total", vendor=vendor.id)
                dropped = True
            elif self.tracker_max_age_seconds is not None and vendor.category not in self.exempt_categories:
                capped = cap_lifetime(value, self.tracker_max_age_seconds, time.time())
                if capped is not None:
                    metrics.inc("capped_cookies_total", vendor=vendor.id)
                    value = capped
            if self.sightings is not None:
                self.sightings.cookie_seen(
                    name.decode("latin-1"), cookie_attributes(original, time.time()), vendor.id if vendor else "",
                    dropped=dropped, capped=value is not original,
                )  # fmt: skip
            if not dropped:
                kept.append((key, value))
        return kept

    def _count_unknown(self, name: str) -> None:
        if name not in self._unknown_names:
            if len(self._unknown_names) >= MAX_UNKNOWN_NAMES:
                name = "other"
            else:
                self._unknown_names.add(name)
        metrics.inc("unknown_cookies_total", name=name)


def cap_lifetime(value: bytes, max_age_seconds: int, now: float) -> bytes | None:
    """A Set-Cookie value whose Max-Age or Expires lies more than `max_age_seconds` ahead, shortened to it;
    None when it lives no longer than that (or only for the session). Both attributes are capped: a
    browser reads Max-Age first, an old one only Expires."""
    parts = value.split(b";")
    changed = False
    for index in range(1, len(parts)):
        name, _, attr_value = parts[index].partition(b"=")
        name = name.strip().lower()
        if name == b"max-age":
            text = attr_value.strip()
            if text.isdigit() and int(text) > max_age_seconds:
                parts[index] = b" Max-Age=" + str(max_age_seconds).encode("ascii")
                changed = True
        elif name == b"expires":
            expires = _cookie_date(attr_value)
            if expires is not None and expires > now + max_age_seconds:
                parts[index] = b" Expires=" + formatdate(now + max_age_seconds, usegmt=True).encode("ascii")
                changed = True
    return b";".join(parts) if changed else None


def cookie_attributes(value: bytes, now: float) -> dict[str, object]:
    """What the inventory keeps of a Set-Cookie value: domain, path, lifetime in seconds as the site set it
    (Max-Age, else Expires; None for a session cookie), HttpOnly, Secure and SameSite. Never the value."""
    domain = path = same_site = ""
    lifetime: int | None = None
    max_age: int | None = None
    http_only = secure = False
    for attribute in value.split(b";")[1:]:
        name, _, attr_value = attribute.partition(b"=")
        name = name.strip().lower()
        text = attr_value.strip().decode("latin-1")
        if name == b"domain":
            domain = text.lower()
        elif name == b"path":
            path = text
        elif name == b"max-age":
            if text.lstrip("-").isdigit():
                max_age = max(0, int(text))
        elif name == b"expires":
            expires = _cookie_date(attr_value)
            if expires is not None:
                lifetime = max(0, int(expires - now))
        elif name == b"httponly":
            http_only = True
        elif name == b"secure":
            secure = True
        elif name == b"samesite":
            same_site = text.capitalize()
    return {
        "domain": domain[:255],
        "path": path[:255],
        "max_age_s": max_age if max_age is not None else lifetime,
        "http_only": http_only,
        "secure": secure,
        "same_site": same_site[:16],
    }


def _cookie_date(value: bytes) -> float | None:
    """An Expires date as seconds since the epoch ("Wed, 21 Oct 2026 07:28:00 GMT", or with dashes as old
    servers write it); None when it cannot be read, and the cookie is then left as it is."""
    parsed = parsedate_tz(value.strip().decode("latin-1").replace("-", " "))
    if parsed is None:
        return None
    try:
        return float(mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def _domain_attribute(value: bytes) -> bytes:
    """The Domain attribute of a Set-Cookie value (the last one wins, as in browsers), or b""."""
    domain = b""
    for attribute in value.split(b";")[1:]:
        key, _, attr_value = attribute.partition(b"=")
        if key.strip().lower() == b"domain":
            domain = attr_value.strip()
    return domain


def expiring_set_cookies(
    cookie_header: str,
    host: str,
    catalog: Catalog,
    *,
    refused: set[str],
    vendors_refused: set[str],
    keep: str,
    vendors_granted: frozenset[str] = frozenset(),
) -> list[tuple[bytes, bytes]]:
    """Set-Cookie headers that expire the visitor's cookies of refused categories or vendors.

    A cookie is known by the catalog's patterns, then by the Open Cookie Database's names; a vendor granted
    by name keeps its cookies even when its category is refused.

    A tracker may have set its cookie on the host or on any parent domain, so each is expired on `/` for
    the host-only form and for every parent domain variant. The cookie named `keep` (the consent cookie)
    is left alone.
    """
    headers: list[tuple[bytes, bytes]] = []
    domains = parent_domains(host)
    for name in parse_cookies(cookie_header):
        if name == keep:
            continue
        vendor = catalog.vendor_for_set_cookie(name)  # a cookie the site holds, not a vendor domain's
        if vendor is None or (vendor.category not in refused and vendor.id not in vendors_refused):
            continue
        if vendor.id in vendors_granted and vendor.id not in vendors_refused:
            continue
        headers.append((b"set-cookie", f"{name}=; Max-Age=0; Path=/".encode("latin-1")))
        for domain in domains:
            headers.append((b"set-cookie", f"{name}=; Max-Age=0; Path=/; Domain={domain}".encode("latin-1")))
    return headers


def parent_domains(host: str) -> list[str]:
    """`www.shop.example.org` → `www.shop.example.org`, `shop.example.org`, `example.org`.

    Cookies cannot be set on a public suffix, so the last two labels are the shortest tried (a site on a
    multi-label suffix such as `.co.uk` gets one harmless extra attempt). IP addresses and single-label
    hosts such as `localhost` have no domain variants.
    """
    if not host or host.replace(".", "").isdigit() or ":" in host or "." not in host:
        return []
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]
