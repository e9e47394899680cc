"""What a page is judged by, and how a classification reaches every instance without a restart.

`SiteRules` bundles everything built from the catalog: the catalog itself (built-in vendors, the config's
``[[vendors]]``, then the privacy team's overlay), the banner, the Set-Cookie filter, the page rewriters and
the CSP backstop. A request takes the bundle in force when it starts and keeps it to its end.

`ClassificationStore` keeps the overlay as one versioned document in the consent log's store, changed by
compare-and-set so two privacy officers deciding at once both land. `RulesWatcher` checks that version off
the request path (a request only compares two clocks; at most every ``interval_s`` it starts a task), and
when it moved, reads the overlay, builds a new bundle in a thread and has the gateway install it at once:
the next page on every instance uses it. The HTML chunk cache keys each chunk by its catalog's token, and
each bundle has a catalog of its own, so no chunk rewritten under old decisions is served again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final

from . import metrics
from ._types import Scope
from .banner import CLEAN_COOKIE, Banner
from .catalog import Catalog
from .classification import EMPTY_OVERLAY, Overlay
from .config import Config
from .cookies import CookieFilter
from .csp import BackstopPolicy
from .decision import Decision
from .errors import StoreUnavailable
from .html import HoldbackRewriter, make_inert
from .inventory.collector import InventoryCollector
from .inventory.report import REPORTED_COOKIE
from .page_headers import hold_back_links, hold_back_refresh
from .store.base import ConsentLog

logger = logging.getLogger("consent_gateway.site_rules")

#: the store document holding the overlay
OVERLAY_DOCUMENT: Final = "classifications"
#: how often each instance asks the store whether the overlay changed
CHECK_INTERVAL_SECONDS: Final = 3.0
#: compare-and-set attempts before a change gives up (each one re-reads the overlay)
_MAX_ATTEMPTS: Final = 8

#: Google tags that honour Consent Mode: in "advanced" mode they load before consent, with every signal
#: denied by the banner's `consent default`, and send only cookieless pings until `consent update`.
CONSENT_MODE_VENDORS: Final = frozenset({"google-analytics", "google-tag-manager", "google-ads"})
_CLEAN_MARK: Final = f"{CLEAN_COOKIE}=".encode()
_REPORTED_MARK: Final = f"{REPORTED_COOKIE}=".encode()


class PageRewriters:
    """Makes each page's `HoldbackRewriter`: the banner in the visitor's language, the decision to apply."""

    def __init__(self, config: Config, catalog: Catalog, banner: Banner,
                 inventory: InventoryCollector | None = None) -> None:
        self._catalog = catalog
        self._inventory = inventory
        self._banner = banner
        self._max_buffer_bytes = config.gateway.rewrite_max_buffer_bytes
        self.max_decoded_bytes = config.gateway.html_max_decoded_bytes
        self.compress = config.gateway.compress
        self._advanced_consent_mode = config.banner.consent_mode == "advanced"
        self._languages: dict[str | None, str | None] = {}

    def new(self, scope: Scope, decision: Decision, nonce: str | None) -> HoldbackRewriter:
        accept_language = _header(scope, b"accept-language")
        try:
            language = self._languages[accept_language]
        except KeyError:
            language = self._banner.language_for(accept_language)
            if len(self._languages) < 1024:  # browsers send a few hundred distinct headers at most
                self._languages[accept_language] = language
        # the page a withdrawal reloads (HTTP/2 may split the Cookie header: look at each)
        clean = any(key == b"cookie" and _CLEAN_MARK in value for key, value in scope["headers"])
        # after a choice, the names scripts left in the browser, once a day (inventory/report.py)
        report_names = (
            decision.explicit
            and self._inventory is not None
            and not any(key == b"cookie" and _REPORTED_MARK in value for key, value in scope["headers"])
        )
        head = self._banner.head_html(
            decision=decision, language=language, nonce=nonce, clean=clean, report_names=report_names
        )
        rewriter = HoldbackRewriter(
            self._catalog, self._holding(decision), head, max_buffer_bytes=self._max_buffer_bytes
        )
        if self._inventory is not None:
            rewriter.on_close = functools.partial(self._inventory.page_seen, scope["path"])
        return rewriter

    def _holding(self, decision: Decision) -> Decision:
        """The decision the page's tags are held back by: Consent Mode "advanced" lets Google's tags load."""
        if self._advanced_consent_mode:
            loaded = CONSENT_MODE_VENDORS - decision.vendors_refused
            decision = replace(decision, vendors_granted=decision.vendors_granted | loaded)
        return decision

    def hold_back_links(self, value: bytes, decision: Decision) -> bytes | None:
        """A page's Link header less the link-values the decision holds back (None: none left)."""
        kept, held = hold_back_links(value, self._catalog, self._holding(decision))
        if held:
            metrics.inc_each("held_back_tags_total", "vendor", held)
        return kept

    def holds_back_refresh(self, value: bytes, decision: Decision) -> bool:
        """Whether a page's Refresh header goes to a URL the decision holds back."""
        vendor = hold_back_refresh(value, self._catalog, self._holding(decision))
        if vendor is not None:
            metrics.inc("held_back_tags_total", vendor=vendor)
        return vendor is not None

    @staticmethod
    def make_inert(chunk: bytes) -> bytes:
        return make_inert(chunk)


@dataclass(frozen=True, slots=True)
class SiteRules:
    """Everything built from one catalog, swapped as a whole."""

    overlay: Overlay
    #: vendors the site really uses (declared in the config or the overlay, or seen by the inventory); None
    #: until an inventory tells: the banner then lists the whole catalog
    used_vendors: frozenset[str] | None
    catalog: Catalog
    banner: Banner
    cookie_filter: CookieFilter
    rewriters: PageRewriters
    csp: BackstopPolicy | None


def build_rules(
    config: Config,
    base: Catalog,
    overlay: Overlay,
    used_vendors: frozenset[str] | None = None,
    inventory: InventoryCollector | None = None,
) -> SiteRules:
    """The bundle for ``overlay`` laid over ``base`` (the built-in catalog, the config's vendors, the site's
    third-party rules). Raises `ConfigError` when the config and overlay do not fit together. ``inventory``
    is told of every page's third parties and every Set-Cookie judged."""
    from .classification import apply_overlay

    catalog = apply_overlay(base, overlay)
    banner = Banner(config, catalog, used_vendors=used_vendors)
    cookie_filter = CookieFilter(
        catalog,
        config.cookie.name,
        block_unknown=config.gateway.unknown_cookies == "block",
        tracker_max_age_seconds=config.cookie.tracker_max_age_days * 24 * 3600,
        exempt_categories=config.required_categories,
    )
    cookie_filter.sightings = inventory
    csp = None
    if config.csp.mode != "off":
        advanced = config.banner.consent_mode == "advanced"
        csp = BackstopPolicy(config, catalog, always_loaded=CONSENT_MODE_VENDORS if advanced else frozenset())
    rewriters = PageRewriters(config, catalog, banner, inventory)
    return SiteRules(overlay, used_vendors, catalog, banner, cookie_filter, rewriters, csp)


def declared_vendors(config: Config, overlay: Overlay) -> frozenset[str]:
    """The vendors the owner says the site uses: the config's ``[[vendors]]`` and the overlay's."""
    ids = {str(table["id"]) for table in config.vendors if "id" in table}
    return frozenset(ids | {d.vendor_id for d in overlay.decisions})


class ClassificationStore:
    """The overlay in the consent log's store: read whole, changed by compare-and-set."""

    def __init__(self, log: ConsentLog) -> None:
        self.log = log

    async def version(self) -> int:
        return await self.log.document_version(OVERLAY_DOCUMENT)

    async def load(self) -> Overlay:
        found = await self.log.document_get(OVERLAY_DOCUMENT)
        return Overlay.from_json(found.body, found.version) if found is not None else EMPTY_OVERLAY

    async def change(self, change: Callable[[Overlay], Overlay]) -> Overlay:
        """Apply ``change`` to the stored overlay and write it back; when another writer got there first,
        read again and re-apply (``change`` may raise to refuse: nothing is then written)."""
        for _ in range(_MAX_ATTEMPTS):
            current = await self.load()
            changed = change(current)
            if changed.decisions == current.decisions:
                return current
            if await self.log.document_put(OVERLAY_DOCUMENT, changed.to_json(), expected_version=current.version):
                return replace(changed, version=current.version + 1)
        raise StoreUnavailable("the classifications kept changing under this write; try again")


#: the vendors the inventory saw on the site, by a given catalog
SeenVendors = Callable[[Catalog], Awaitable[frozenset[str]]]
#: how often the vendors the site uses are read again from the inventory (the banner's list)
USED_VENDORS_INTERVAL_SECONDS: Final = 60.0


class RulesWatcher:
    """Keeps a gateway's `SiteRules` in step with the stored overlay (and the vendors the site uses).

    :param install: called with each new bundle; it must swap it in without awaiting (atomic for requests).
    :param seen_vendors: the vendors the inventory saw on the site; until it saw one, the banner lists the
        whole catalog (a new site's inventory is empty).
    """

    def __init__(
        self,
        config: Config,
        base: Catalog,
        store: ClassificationStore,
        install: Callable[[SiteRules], None],
        *,
        seen_vendors: SeenVendors | None = None,
        interval_s: float = CHECK_INTERVAL_SECONDS,
        used_interval_s: float = USED_VENDORS_INTERVAL_SECONDS,
        inventory: InventoryCollector | None = None,
    ) -> None:
        self.config = config
        self.base = base
        self.store = store
        self._install = install
        self.seen_vendors = seen_vendors
        self.interval_s = interval_s
        self.used_interval_s = used_interval_s
        self.inventory = inventory
        self.rules = build_rules(config, base, EMPTY_OVERLAY, inventory=inventory)
        self._next_check = 0.0
        self._next_used = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def poke(self) -> None:
        """Called on each request: starts a check when one is due, never waits for it."""
        now = time.monotonic()
        if now < self._next_check or (self._task is not None and not self._task.done()):
            return
        self._next_check = now + self.interval_s
        self._task = asyncio.get_running_loop().create_task(self._check(), name="consent-gateway rules check")

    async def _check(self) -> None:
        try:
            await self.refresh()
        except (StoreUnavailable, OSError) as exc:
            metrics.inc("store_errors_total", operation="classifications")
            logger.info("classifications not checked (the store did not answer: %s)", exc)
        except Exception:
            logger.exception("classifications not applied: the rules in force stay")

    async def refresh(self, *, force: bool = False) -> bool:
        """Install new rules if the overlay or the used vendors changed; True when it did."""
        async with self._lock:
            current = self.rules
            version = await self.store.version()
            overlay = current.overlay
            if force or version != overlay.version:
                overlay = await self.store.load()
            used = current.used_vendors
            now = time.monotonic()
            if self.seen_vendors is not None and (force or overlay is not current.overlay or now >= self._next_used):
                self._next_used = now + self.used_interval_s
                seen = await self.seen_vendors(current.catalog)
                used = declared_vendors(self.config, overlay) | seen if seen else None
            if overlay.version == current.overlay.version and used == current.used_vendors and not force:
                return False
            rules = await asyncio.to_thread(build_rules, self.config, self.base, overlay, used, self.inventory)
            self.rules = rules
            self._install(rules)
            logger.info("classifications version %d applied (%d decisions)", overlay.version, len(overlay.decisions))
            return True

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
