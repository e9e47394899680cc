"""What the site really uses, as the owner and its visitors read it: the inventory joined with the catalog.

The inventory (`inventory/`) records what was seen, with the vendor it had *when* it was seen; the privacy
team classifies afterwards. So every reader here asks the catalog in force (config and classifications) for
an entry's vendor, and falls back to the recorded one. Two readers:

* the dashboard's inventory and enforcement pages and the CLI (`entry_rows`);
* the cookie declaration (`build_declaration`): every category, vendor, cookie and storage key the site
  uses — vendors the inventory saw (catalog ∩ inventory), those the owner declared (config ``[[vendors]]``
  and classifications), and what nobody described yet — with purpose, provider, lifetime, first or third
  party and when it was last seen. What nobody described yet is listed from the site's own pages and
  Set-Cookie headers only: names browsers report (and CSP reports) can be forged by anyone, so they reach
  the public page only once they belong to a vendor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from .catalog import URL_KINDS, Catalog
from .catalog_schema import CookieRule, VendorRule
from .classification import SITE_VENDOR_ID, SITE_VENDOR_NAME, Overlay
from .config import Config
from .html.holdback import INLINE_PREFIX
from .inventory.records import COOKIE, HOST, STORAGE, UNCLASSIFIED, VIOLATION, InventoryEntry, InventoryQuery
from .store.base import ConsentLog

T = TypeVar("T")

#: entries read per kind for a page or the declaration (the most recently seen first)
MAX_ENTRIES_PER_KIND: Final = 5_000
_PAGE: Final = 1_000
#: the gateway's own cookies, always declared (strictly necessary): name suffix or name, lifetime ("": the
#: consent cookie's), purposes
_GATEWAY_COOKIES: Final[tuple[tuple[str, str, Mapping[str, str]], ...]] = (
    ("", "", {
        "en": "Remembers your cookie choices and when you made them.",
        "fr": "Retient vos choix en matière de cookies et la date à laquelle vous les avez faits.",
    }),
    ("_id", "", {
        "en": "Keeps your consent identifier, so your history of choices can be shown to you and erased on request.",
        "fr": "Conserve votre identifiant de consentement, pour vous montrer l'historique de vos choix et "
              "l'effacer à votre demande.",
    }),
    ("cg_clean", "2 minutes", {
        "en": "Set after you withdraw your consent, so the next page removes the refused trackers' cookies.",
        "fr": "Posé quand vous retirez votre consentement, pour que la page suivante efface les cookies des "
              "traceurs refusés.",
    }),
    ("cg_inv", "1 day", {
        "en": "Set once your browser told this site the names (never the values) of its cookies and storage "
              "keys, so it does so at most once a day.",
        "fr": "Posé quand votre navigateur a indiqué à ce site les noms (jamais les valeurs) de ses cookies et "
              "clés de stockage, pour qu'il ne le fasse qu'une fois par jour au plus.",
    }),
)  # fmt: skip


async def read_entries(log: ConsentLog, kind: str, *, limit: int = MAX_ENTRIES_PER_KIND) -> list[InventoryEntry]:
    """Up to ``limit`` entries of one kind, most recently seen first."""
    entries: list[InventoryEntry] = []
    while len(entries) < limit:
        page = await log.read_inventory(InventoryQuery(kind=kind, limit=min(_PAGE, limit - len(entries)),
                                                       offset=len(entries)))
        entries.extend(page.entries)
        if not page.entries or len(entries) >= page.total:
            break
    return entries


def vendor_of(entry: InventoryEntry, catalog: Catalog) -> VendorRule | None:
    """The vendor of an entry by the catalog in force, else by what was recorded; None when nobody
    classified it (an unclassified host, an unknown cookie or key)."""
    found: VendorRule | None = None
    if entry.kind in (HOST, VIOLATION):
        found = vendor_of_host(entry.name, catalog)
    elif entry.kind == COOKIE:
        found = catalog.vendor_for_set_cookie(entry.name, str(entry.detail.get("domain", "")))
    elif entry.kind == STORAGE:
        found = vendor_of_storage(entry.name, str(entry.detail.get("area", "")), catalog)
    if found is None and entry.vendor not in ("", UNCLASSIFIED):
        found = catalog.vendors.get(entry.vendor)
    return found


def vendor_of_host(host: str, catalog: Catalog) -> VendorRule | None:
    for kind in URL_KINDS:
        vendor = catalog.vendor_for_url(f"https://{host}/", kind)
        if vendor is not None:
            return vendor
    return None


def vendor_of_storage(name: str, area: str, catalog: Catalog) -> VendorRule | None:
    """A browser-reported name: a cookie (``area`` "cookie") or a localStorage/sessionStorage key."""
    if area == "cookie":
        return catalog.vendor_for_cookie(name)
    for vendor in catalog.vendors.values():
        if any(rule.matches(name) for rule in vendor.storage):
            return vendor
    return None


def lifetime_text(seconds: object) -> str:
    """A Set-Cookie lifetime in the catalog's words: "session", "13 months", "2 days"…"""
    if seconds is None or not isinstance(seconds, int | float):
        return "session"
    value = int(seconds)
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        if value >= size and (unit != "year" or value % size < 30 * 86400):
            count = round(value / size)
            if unit == "month" and count >= 12 and count % 12 == 0:
                count, unit = count // 12, "year"
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{value} second{'s' if value != 1 else ''}"


# -- the dashboard's rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One inventory entry as the dashboard and the CLI show it."""

    entry: InventoryEntry
    vendor: VendorRule | None
    #: the classification decided for it, if any
    decided: str | None

    @property
    def vendor_label(self) -> str:
        if self.vendor is None:
            return "unclassified"
        return self.vendor.name or self.vendor.id

    @property
    def category(self) -> str:
        return self.vendor.category if self.vendor is not None else UNCLASSIFIED

    @property
    def subject_kind(self) -> str:
        """What a classification of this entry is about: "host", "cookie" or "storage"."""
        return subject_kind(self.entry)

    def as_dict(self) -> dict[str, Any]:
        data = self.entry.as_dict()
        data["recorded_vendor"] = data.pop("vendor")
        data["vendor"] = self.vendor.id if self.vendor is not None else None
        data["vendor_name"] = self.vendor_label
        data["category"] = self.category
        data["classification"] = self.decided
        return data


def subject_kind(entry: InventoryEntry) -> str:
    """A host or a blocked load is a host; a cookie a browser reported is a cookie like one the site set."""
    if entry.kind in (HOST, VIOLATION):
        return "host"
    if entry.kind == STORAGE and entry.detail.get("area") != "cookie":
        return "storage"
    return "cookie"


def entry_rows(entries: Iterable[InventoryEntry], catalog: Catalog, overlay: Overlay) -> list[EntryRow]:
    rows = []
    for entry in entries:
        decision = overlay.get(subject_kind(entry), entry.name)
        rows.append(EntryRow(entry, vendor_of(entry, catalog), decision.action if decision else None))
    return rows


# -- the cookie declaration ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DeclaredItem:
    """A cookie or storage key in the declaration."""

    name: str
    purpose: str
    lifetime: str
    #: "first": set on the site's own domain (or its storage); "third": on the vendor's domain
    party: str
    domain: str = ""
    last_seen_ms: int | None = None
    #: the purpose in other languages (the gateway's own cookies), by language code
    translations: Mapping[str, str] = field(default_factory=dict)
    #: one of the gateway's own cookies: in use whenever the gateway is
    gateway: bool = False

    def purpose_in(self, lang: str) -> str:
        return self.translations.get(lang) or self.purpose

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"name": self.name, "purpose": self.purpose_in(lang), "lifetime": self.lifetime, "party": self.party,
                "domain": self.domain, "last_seen_ms": self.last_seen_ms}


@dataclass(slots=True)
class DeclaredVendor:
    id: str
    name: str
    category: str
    policy_url: str
    purpose: str
    #: True for the site itself (its own essential cookies)
    first_party: bool
    #: hosts, cookies and storage keys by name, in the order first met (dicts: a site has thousands)
    seen_hosts: dict[str, None] = field(default_factory=dict)
    items: dict[str, dict[str, DeclaredItem]] = field(default_factory=lambda: {"cookie": {}, "storage": {}})
    last_seen_ms: int | None = None

    @property
    def hosts(self) -> list[str]:
        return list(self.seen_hosts)

    @property
    def cookies(self) -> list[DeclaredItem]:
        return list(self.items["cookie"].values())

    @property
    def storage(self) -> list[DeclaredItem]:
        return list(self.items["storage"].values())

    def seen(self, at_ms: int) -> None:
        self.last_seen_ms = max(self.last_seen_ms or 0, at_ms)

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "category": self.category, "policy_url": self.policy_url,
            "purpose": self.purpose, "first_party": self.first_party, "hosts": self.hosts,
            "cookies": [c.as_dict(lang) for c in self.cookies], "storage": [s.as_dict(lang) for s in self.storage],
            "last_seen_ms": self.last_seen_ms,
        }


@dataclass(slots=True)
class Declaration:
    """Category id → the vendors the site uses in it (categories in the config's order)."""

    categories: dict[str, list[DeclaredVendor]]

    def vendor_ids(self) -> frozenset[str]:
        return frozenset(v.id for vendors in self.categories.values() for v in vendors if v.id != UNCLASSIFIED)


#: entries that visitors' browsers report (anyone can post one): a name no vendor is known for stays off the
#: public declaration, so a forged report cannot write on the site's page; the owner sees it in the dashboard
_REPORTED: Final = (STORAGE, VIOLATION)


def build_declaration(
    config: Config, catalog: Catalog, overlay: Overlay, entries: Mapping[str, Sequence[InventoryEntry]]
) -> Declaration:
    """The declaration from the catalog in force and the inventory (``entries`` by kind)."""
    vendors: dict[str, DeclaredVendor] = {}

    def declared(vendor: VendorRule) -> DeclaredVendor:
        found = vendors.get(vendor.id)
        if found is None:
            found = vendors[vendor.id] = _declared_vendor(vendor)
        return found

    # what the owner declared: the config's vendors and the classifications, seen or not (yet)
    owned = {str(t["id"]) for t in config.vendors if "id" in t} | {d.vendor_id for d in overlay.decisions}
    for vendor_id in owned:
        vendor = catalog.vendors.get(vendor_id)
        if vendor is not None:
            declared(vendor)
    unknown = DeclaredVendor(UNCLASSIFIED, "", UNCLASSIFIED, "", "", first_party=False)
    for entry in (*entries.get(HOST, ()), *entries.get(VIOLATION, ())):
        vendor = vendor_of(entry, catalog)
        if vendor is None and entry.kind in _REPORTED:
            continue
        target = declared(vendor) if vendor is not None else unknown
        if not entry.name.startswith(INLINE_PREFIX):  # an inline snippet of the vendor's: no host to name
            target.seen_hosts.setdefault(entry.name, None)
        target.seen(entry.last_seen_ms)
    # cookies and keys the site or its visitors' browsers showed
    seen_cookies: dict[tuple[str, str], int] = {}
    for entry in (*entries.get(COOKIE, ()), *entries.get(STORAGE, ())):
        vendor = vendor_of(entry, catalog)
        area = "cookie" if entry.kind == COOKIE else str(entry.detail.get("area", "cookie"))
        kind = "cookie" if area == "cookie" else "storage"
        if vendor is None and entry.kind in _REPORTED:
            continue
        if vendor is None:
            item = DeclaredItem(entry.name, "", lifetime_text(entry.detail.get("max_age_s"))
                                if entry.kind == COOKIE else "", "first",
                                str(entry.detail.get("domain", "")), entry.last_seen_ms)
            _add_item(unknown, kind, item)
            unknown.seen(entry.last_seen_ms)
            continue
        target = declared(vendor)
        target.seen(entry.last_seen_ms)
        rule = _rule_for(vendor, entry.name, kind)
        key = (vendor.id, rule.pattern if rule else entry.name)
        seen_cookies[key] = max(seen_cookies.get(key, 0), entry.last_seen_ms)
        if rule is None:  # the vendor is known, this name of it is not in the catalog: declared as seen
            lifetime = lifetime_text(entry.detail.get("max_age_s")) if entry.kind == COOKIE else ""
            _add_item(target, kind, DeclaredItem(entry.name, "", lifetime, "first",
                                                 str(entry.detail.get("domain", "")), entry.last_seen_ms))
    for target in vendors.values():
        vendor = catalog.vendors[target.id]
        for kind, rules in (("cookie", vendor.cookies), ("storage", vendor.storage)):
            for rule in rules:
                item = DeclaredItem(rule.pattern, rule.purpose, rule.lifetime, "third" if rule.domain else "first",
                                    rule.domain, seen_cookies.get((vendor.id, rule.pattern)))
                _add_item(target, kind, item)
    site = vendors.get(SITE_VENDOR_ID)
    if site is None:
        required = next((c.id for c in config.categories if c.required), None)
        if required is not None:
            site = vendors[SITE_VENDOR_ID] = DeclaredVendor(SITE_VENDOR_ID, SITE_VENDOR_NAME, required, "", "",
                                                            first_party=True)
    if site is not None:
        site.first_party = True
        consent_lifetime = lifetime_text(max(config.cookie.accept_max_age_days,
                                             config.cookie.refuse_max_age_days) * 86_400)
        for suffix, lifetime, purposes in _GATEWAY_COOKIES:
            name = suffix if suffix.startswith("cg_") else config.cookie.name + suffix
            _add_item(site, "cookie", DeclaredItem(name, purposes["en"], lifetime or consent_lifetime, "first",
                                                   translations=purposes, gateway=True))
    categories: dict[str, list[DeclaredVendor]] = {c.id: [] for c in config.categories}
    for target in sorted(vendors.values(), key=lambda v: (v.id != SITE_VENDOR_ID, v.name.lower())):
        categories.setdefault(target.category, []).append(target)
    if unknown.seen_hosts or unknown.items["cookie"] or unknown.items["storage"]:
        categories.setdefault(UNCLASSIFIED, []).append(unknown)
    return Declaration(categories)


def _declared_vendor(vendor: VendorRule) -> DeclaredVendor:
    return DeclaredVendor(vendor.id, vendor.name or vendor.id, vendor.category, vendor.policy_url, vendor.purpose,
                          first_party=vendor.id == SITE_VENDOR_ID)


def _rule_for(vendor: VendorRule, name: str, kind: str) -> CookieRule | None:
    rules = vendor.cookies if kind == "cookie" else vendor.storage
    return next((rule for rule in rules if rule.matches(name)), None)


def _add_item(vendor: DeclaredVendor, kind: str, item: DeclaredItem) -> None:
    """Add ``item``; a name already there keeps its description and takes the later "last seen"."""
    items = vendor.items[kind]
    existing = items.get(item.name)
    if existing is None:
        items[item.name] = item
    elif item.last_seen_ms is not None and (existing.last_seen_ms or 0) < item.last_seen_ms:
        existing.last_seen_ms = item.last_seen_ms
        existing.purpose = existing.purpose or item.purpose
        existing.lifetime = existing.lifetime or item.lifetime


async def read_usage(log: ConsentLog) -> dict[str, list[InventoryEntry]]:
    """The host, cookie, storage and blocked-load entries of the inventory (what the declaration is built
    from: a tracker a tag manager injects is used by the site even though no page names it)."""
    return {kind: await read_entries(log, kind) for kind in (HOST, COOKIE, STORAGE, VIOLATION)}


def private_copy(catalog: Catalog) -> Catalog:
    """The same vendors in a catalog of its own: its lookup caches are not shared with the event loop's, so
    a thread can join thousands of entries with it (`in_thread`) while pages are rewritten."""
    return Catalog(catalog.vendors.values(), cookie_database=catalog.cookie_database)


async def in_thread(work: Callable[[Catalog], T], catalog: Catalog) -> T:
    """``work(copy of catalog)`` in a worker thread: joining a large inventory takes a fraction of a second
    that the event loop must not spend."""
    return await asyncio.to_thread(lambda: work(private_copy(catalog)))


async def seen_vendor_ids(log: ConsentLog, catalog: Catalog) -> frozenset[str]:
    """Every vendor the inventory saw on the site, by the catalog in force (what the banner lists)."""
    usage = await read_usage(log)

    def join(copy: Catalog) -> frozenset[str]:
        found: set[str] = set()
        for entries in usage.values():
            for entry in entries:
                vendor = vendor_of(entry, copy)
                if vendor is not None:
                    found.add(vendor.id)
        return frozenset(found)

    return await in_thread(join, catalog)
