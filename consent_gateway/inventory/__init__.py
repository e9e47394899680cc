"""The inventory: what the site really uses, kept true from live traffic and shared by every instance.

Sightings come from the request path — the rewriter's third-party decisions (chunk-cache hits included),
the Set-Cookie filter, the CSP report endpoint and the banner's name report — into an in-process
`InventoryCollector` (bounded memory, no I/O), which an `InventoryFlusher` merges into the consent log's
store in batches, off the request path. The admin pages, the cookie declaration and the CLI read it back
through the store's `read_inventory`.
"""

from __future__ import annotations

from consent_gateway.inventory.records import (
    COOKIE,
    HOST,
    KINDS,
    STORAGE,
    UNCLASSIFIED,
    VIOLATION,
    InventoryEntry,
    InventoryPage,
    InventoryQuery,
    InventorySize,
    InventoryStore,
)

__all__ = [
    "COOKIE",
    "HOST",
    "KINDS",
    "STORAGE",
    "UNCLASSIFIED",
    "VIOLATION",
    "InventoryEntry",
    "InventoryPage",
    "InventoryQuery",
    "InventorySize",
    "InventoryStore",
]
