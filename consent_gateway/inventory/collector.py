"""`InventoryCollector`: this process's sightings since the last flush, aggregated in bounded memory.

Called on the request path, so it does no I/O and little work: a page's third parties are noted once the
page ends, in one call that only counts the page (its path and its sightings, the same for every view of a
page the chunk cache serves); they are spread over their hosts' entries when the flusher takes them. A
Set-Cookie header, a browser's name report and a CSP violation each update one entry. Sightings of one
thing add up into one entry until `InventoryFlusher` (flusher.py) takes them all and merges them into the
store. Past :data:`MAX_PENDING` distinct entries, new ones are dropped and counted
(``inventory_sightings_dropped_total``): a flood of random names cannot grow the memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

from consent_gateway import metrics
from consent_gateway.inventory.records import (
    COOKIE,
    HOST,
    MAX_NAME_CHARS,
    MAX_SAMPLES,
    STORAGE,
    UNCLASSIFIED,
    VIOLATION,
    InventoryEntry,
    element_bit,
    key_of,
    page_path,
)

#: distinct entries held between two flushes
MAX_PENDING: Final = 10_000

#: One third-party element of a page as the rewriter notes it: (host, vendor id, element kind, held back).
Sighting = tuple[str, str, str, bool]

metrics.COUNTERS.setdefault(
    "inventory_sightings_dropped_total",
    "Inventory sightings not kept because too many distinct entries waited for the next flush, by kind.",
)


class InventoryCollector:
    """What this process saw since the last flush. One per gateway; not thread-safe (one event loop)."""

    def __init__(self, *, max_pending: int = MAX_PENDING, clock: Callable[[], float] = time.time) -> None:
        self.max_pending = max_pending
        self._clock = clock
        self._entries: dict[tuple[str, str], InventoryEntry] = {}
        #: pages seen since the last flush, not yet spread over their hosts: (path, sightings) → [views,
        #: first seen ms, last seen ms]
        self._pages: dict[tuple[str, tuple[Sighting, ...]], list[int]] = {}
        #: the last page counted (path, its sightings, its counts in `_pages`): a page served again from the
        #: chunk cache notes the very same sightings, compared here without hashing them all again
        self._last_page: tuple[str, list[Sighting], list[int]] | None = None

    def __len__(self) -> int:
        """Distinct entries waiting for the flusher (asked by the metrics, not on a page's path)."""
        self._spread_pages()
        return len(self._entries)

    def _entry(self, kind: str, key: str, name: str, vendor: str, now_ms: int) -> InventoryEntry | None:
        """The pending entry of (kind, key), made when new; None past the bound."""
        entry = self._entries.get((kind, key))
        if entry is None:
            if len(self._entries) >= self.max_pending:
                metrics.inc("inventory_sightings_dropped_total", kind=kind)
                return None
            entry = self._entries[(kind, key)] = InventoryEntry(
                kind, key, name, vendor, first_seen_ms=now_ms, last_seen_ms=now_ms
            )
        else:
            entry.vendor = vendor  # the latest classification (the overlay may have changed it)
            entry.last_seen_ms = now_ms
        return entry

    # -- the request path ------------------------------------------------------------------------------

    def page_seen(self, path: str, sightings: Iterable[Sighting]) -> None:
        """The third-party elements of one page, as the rewriter noted them (chunk-cache hits included)."""
        now_ms = int(self._clock() * 1000)
        seen = list(sightings)
        last = self._last_page
        if last is not None and last[0] == path and last[1] == seen:
            views = last[2]
        else:
            key = (path, tuple(seen))
            found = self._pages.get(key)
            if found is None:
                if len(self._pages) >= self.max_pending:
                    self._spread_pages()
                self._pages[key] = views = [0, now_ms, now_ms]
            else:
                views = found
            self._last_page = (path, seen, views)
        views[0] += 1
        views[2] = now_ms

    def _spread_pages(self) -> None:
        """The pages seen, counted on their hosts' entries."""
        pages, self._pages = self._pages, {}
        self._last_page = None
        for (path, sightings), (views, first_ms, last_ms) in pages.items():
            sample = page_path(path)
            for host, vendor, kind, held in sightings:
                entry = self._entry(HOST, host, host, vendor, last_ms)
                if entry is None:
                    continue
                entry.first_seen_ms = min(entry.first_seen_ms, first_ms)
                entry.count += views
                if held:
                    entry.held += views
                else:
                    entry.allowed += views
                entry.element_kinds |= element_bit(kind)
                samples = entry.samples
                if sample not in samples and (len(samples) < MAX_SAMPLES or sample < samples[-1]):
                    entry.samples = tuple(sorted((*samples, sample)))[:MAX_SAMPLES]

    def cookie_seen(self, name: str, attributes: dict[str, object], vendor: str, *, dropped: bool,
                    capped: bool = False) -> None:
        """One Set-Cookie header: its attributes (see ``cookies.cookie_attributes``), dropped or passed."""
        now_ms = int(self._clock() * 1000)
        name = name[:MAX_NAME_CHARS]
        key = key_of(name, str(attributes.get("domain", "")), str(attributes.get("path", "")))
        entry = self._entry(COOKIE, key, name, vendor, now_ms)
        if entry is None:
            return
        entry.detail = attributes
        entry.count += 1
        if dropped:
            entry.dropped += 1
        else:
            entry.passed += 1
            if capped:
                entry.capped += 1

    def names_reported(self, area: str, names: Iterable[tuple[str, str]]) -> None:
        """Cookie or storage key names a browser reported: (name, vendor id or "") in one ``area``."""
        now_ms = int(self._clock() * 1000)
        for name, vendor in names:
            entry = self._entry(STORAGE, key_of(area, name), name, vendor, now_ms)
            if entry is not None:
                entry.detail = {"area": area}
                entry.count += 1

    def csp_violation(self, host: str, directive: str, page_path: str, consent_state: str, *,
                      vendor: str = UNCLASSIFIED) -> None:
        """A load without consent the CSP backstop reported (csp_report.ViolationSink)."""
        now_ms = int(self._clock() * 1000)
        key = key_of(host, directive, page_path, consent_state)
        entry = self._entry(VIOLATION, key, host, vendor, now_ms)
        if entry is not None:
            entry.detail = {"directive": directive, "page_path": page_path, "consent_state": consent_state}
            entry.samples = (page_path,)
            entry.count += 1

    # -- the flusher -------------------------------------------------------------------------------------

    def drain(self) -> list[InventoryEntry]:
        """Everything pending, handed over; the collector starts empty."""
        self._spread_pages()
        entries = list(self._entries.values())
        self._entries = {}
        return entries

    def restore(self, entries: Iterable[InventoryEntry]) -> None:
        """Put back what a flush could not write (the store was down), merged with what came since; past
        the bound the rest is dropped and counted."""
        for entry in entries:
            found = self._entries.get((entry.kind, entry.key))
            if found is not None:
                entry.merge(found)
            elif len(self._entries) >= self.max_pending:
                metrics.inc("inventory_sightings_dropped_total", kind=entry.kind)
                continue
            self._entries[(entry.kind, entry.key)] = entry
