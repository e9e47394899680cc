"""Set-Cookie filtering: tracking cookies the visitor has not allowed never reach the browser.

Each cookie name is classified once through the catalog (then cached); a known vendor's cookie passes only
when the decision allows that vendor. Cookies the catalog does not know pass by default and are counted by
name so the owner sees them in the dashboard's inventory (`unknown_cookies = "block"` drops them). The
consent cookie itself is set only by the gateway's own routes, never by a proxied page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import metrics
from .decision import Decision

if TYPE_CHECKING:
    from .catalog import Catalog, VendorRule

#: Distinct unknown names counted by name; past this, "other" (random names must not grow the metrics).
MAX_UNKNOWN_NAMES = 500


class CookieFilter:
    def __init__(self, catalog: Catalog, consent_cookie_name: str, *, block_unknown: bool = False) -> None:
        self.catalog = catalog
        self.consent_cookie = consent_cookie_name.encode("latin-1")
        self.block_unknown = block_unknown
        self._vendors: dict[tuple[bytes, bytes], VendorRule | None] = {}
        self._unknown_names: set[str] = set()

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
            if vendor is None:
                self._count_unknown(name.decode("latin-1"))
                if self.block_unknown:
                    continue
            elif not decision.allows_vendor(vendor.id, vendor.category):
                metrics.inc("dropped_cookies_total", vendor=vendor.id)
                continue
            kept.append((key, value))
        return kept

    def _count_unknown(self, name: str) -> None:
        if name not in self._unknown_names:
            if len(self._unknown_names) >= MAX_UNKNOWN_NAMES:
                name = "other"
            else:
                self._unknown_names.add(name)
        metrics.inc("unknown_cookies_total", name=name)


def _domain_attribute(value: bytes) -> bytes:
    """The Domain attribute of a Set-Cookie value (the last one wins, as in browsers), or b""."""
    domain = b""
    for attribute in value.split(b";")[1:]:
        key, _, attr_value = attribute.partition(b"=")
        if key.strip().lower() == b"domain":
            domain = attr_value.strip()
    return domain
