"""Cookie names the catalog does not describe, classified with the Open Cookie Database (bundled, Apache-2.0).

Only a fallback for the Set-Cookie filter, and a conservative one: a wrong match drops a cookie the site
needs. So a row classifies a cookie only when

* its category is a tracking one (Marketing, Analytics, Personalization); Functional, Security and
  Necessary rows never classify anything;
* its name is specific: exact names of 3+ characters, prefixes of 4+ ("_s*" or "tp*" would flag unrelated
  cookies), and no name that the database also lists as functional or under another category;
* its domain fits: a row without a domain is a cookie the vendor's script sets on the site (``_ga``); a row
  with one (``adnxs.com``) only matches a cookie set for that domain, never a site's own cookie of the same
  generic name.

Data: https://github.com/jkwakman/Open-Cookie-Database (see ``data/NOTICE``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import ClassVar

from .catalog_schema import VendorRule

SOURCE_URL = "https://github.com/jkwakman/Open-Cookie-Database"
BUNDLED_FILE = "data/open-cookie-database.csv"
#: the database's categories that classify a cookie, and the consent category they map to
CATEGORIES = {"Marketing": "marketing", "Analytics": "analytics", "Personalization": "preferences"}
MIN_EXACT_LENGTH = 3
MIN_PREFIX_LENGTH = 4
#: names too common in sites' own code to trust whichever vendor the database files them under
GENERIC_NAMES = frozenset({
    "session", "sessionid", "session_id", "sid", "uid", "user", "userid", "user_id", "id", "token", "lang",
    "language", "locale", "country", "currency", "test", "debug", "cookie", "consent", "visitor", "visitor_id",
    "tracking", "optout", "_session", "csrftoken", "theme", "cart", "device", "ref", "referrer", "source",
})
_SLUG_RE = re.compile(r"[^a-z0-9]+")


class CookieDatabase:
    """Open Cookie Database rows indexed by cookie name, for cookies no catalog vendor claims."""

    _bundled: ClassVar[CookieDatabase | None] = None

    def __init__(self, rows: Iterable[Mapping[str, str]]) -> None:
        candidates: dict[str, list[tuple[str, VendorRule, bool]]] = {}
        untrusted: set[str] = set()
        for row in rows:
            name = (row.get("Cookie / Data Key name") or "").strip()
            wildcard = (row.get("Wildcard match") or "").strip() == "1"
            category = CATEGORIES.get((row.get("Category") or "").strip())
            if not name:
                continue
            if category is None or name.lower() in GENERIC_NAMES:
                untrusted.add(name)
                continue
            if len(name) < (MIN_PREFIX_LENGTH if wildcard else MIN_EXACT_LENGTH):
                continue
            vendor = _vendor(row.get("Platform") or "", category)
            for domain in domains_of(row.get("Domain") or "") or [""]:
                candidates.setdefault(name, []).append((domain, vendor, wildcard))
        self._exact: dict[str, list[tuple[str, VendorRule]]] = {}
        self._prefixes: dict[int, dict[str, list[tuple[str, VendorRule]]]] = {}
        for name, entries in candidates.items():
            if name in untrusted or len({vendor.category for _, vendor, _ in entries}) > 1:
                continue  # also listed as functional, or filed under two categories: ambiguous
            for domain, vendor, wildcard in entries:
                if wildcard:
                    self._prefixes.setdefault(len(name), {}).setdefault(name, []).append((domain, vendor))
                else:
                    self._exact.setdefault(name, []).append((domain, vendor))
        self._lengths = sorted(self._prefixes, reverse=True)

    @classmethod
    def bundled(cls) -> CookieDatabase:
        """The copy shipped in the package, parsed once per process (tens of milliseconds)."""
        if cls._bundled is None:
            text = resources.files(__package__).joinpath(BUNDLED_FILE).read_text(encoding="utf-8")
            cls._bundled = cls(csv.DictReader(io.StringIO(text)))
        return cls._bundled

    def lookup(self, name: str, domain: str = "") -> VendorRule | None:
        """The vendor behind a cookie ``name`` set for ``domain`` (the Set-Cookie's Domain attribute; empty for
        a host-only cookie of the site), or None when the database does not say so for sure."""
        domain = domain.lstrip(".").lower()
        found = _pick(self._exact.get(name), domain)
        if found is not None:
            return found
        for length in self._lengths:
            found = _pick(self._prefixes[length].get(name[:length]), domain)
            if found is not None:
                return found
        return None

    def __len__(self) -> int:
        return len(self._exact) + sum(len(table) for table in self._prefixes.values())


def _pick(entries: list[tuple[str, VendorRule]] | None, domain: str) -> VendorRule | None:
    if not entries:
        return None
    for row_domain, vendor in entries:
        if not row_domain or domain == row_domain or domain.endswith("." + row_domain):
            return vendor
    return None


def domains_of(raw: str) -> list[str]:
    """``".bing.com (3rd party) or .microsoft.com (3rd party)"`` -> ``["bing.com", "microsoft.com"]``."""
    found = []
    for part in raw.lower().split(" or "):
        part = part.replace("(3rd party)", "").strip().lstrip(".")
        if part:
            found.append(part)
    return found


_VENDORS: dict[tuple[str, str], VendorRule] = {}


def _vendor(platform: str, category: str) -> VendorRule:
    key = (platform, category)
    vendor = _VENDORS.get(key)
    if vendor is None:
        slug = _SLUG_RE.sub("-", platform.lower()).strip("-") or "unknown"
        vendor = VendorRule(id=f"ocd-{slug}", category=category, name=platform or "Unknown", source=SOURCE_URL)
        _VENDORS[key] = vendor
    return vendor
