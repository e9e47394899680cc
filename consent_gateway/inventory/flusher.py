"""`InventoryFlusher`: merges what the collector gathered into the store, in batches, off the request path.

Runs every ``[inventory] flush_interval_seconds`` while the gateway runs (started and stopped with the
consent log, see store/keeper.py), and once more at shutdown so nothing seen is lost on a clean stop. A
store that does not answer keeps the batch in memory (bounded) for the next try. After a flush it reads the
stored inventory's size for the metrics — the figure every instance shares, not this process's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from consent_gateway import metrics
from consent_gateway.background import BackgroundTask
from consent_gateway.errors import StoreUnavailable
from consent_gateway.inventory.collector import InventoryCollector
from consent_gateway.inventory.records import KINDS, InventorySize, InventoryStore

logger = logging.getLogger("consent_gateway.inventory")

#: how long the final flush at shutdown may take
FINAL_FLUSH_TIMEOUT_S: Final = 5.0


class InventoryFlusher:
    def __init__(self, store: InventoryStore, collector: InventoryCollector, *, interval_s: float) -> None:
        self.store = store
        self.collector = collector
        self.interval_s = interval_s
        #: the stored inventory's size as last read (None until the first flush)
        self.size: InventorySize | None = None
        self._background = BackgroundTask("inventory")
        self._lock = asyncio.Lock()

    def start(self) -> None:
        if self.interval_s > 0:
            self._background.start(self._loop)

    async def stop(self) -> None:
        """Stop the periodic flush, then flush what is left (bounded in time: shutdown must not hang)."""
        await self._background.stop()
        try:
            await asyncio.wait_for(self.flush(), FINAL_FLUSH_TIMEOUT_S)
        except (TimeoutError, StoreUnavailable, OSError) as exc:
            logger.warning("the inventory's last sightings were not saved at shutdown: %s", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.flush()
            except (StoreUnavailable, OSError) as exc:
                logger.info("inventory not flushed (the store did not answer: %s); kept for the next try", exc)

    async def flush(self) -> int:
        """Merge everything pending into the store; returns how many entries were written. On a store error
        the batch goes back to the collector and the error is raised."""
        async with self._lock:
            entries = self.collector.drain()
            if entries:
                try:
                    await self.store.merge_inventory(entries)
                except BaseException:
                    self.collector.restore(entries)
                    metrics.inc("store_errors_total", operation="merge_inventory")
                    raise
            if entries or self.size is None:  # what other instances add shows after this one's next flush
                self.size = await self.store.inventory_size()
            return len(entries)

    def metrics_lines(self) -> list[str]:
        """Prometheus lines: the stored inventory's size by kind, unclassified hosts, and what waits here."""
        lines = [
            "# HELP consent_gateway_inventory_entries Entries of the stored inventory (every instance's), by kind.",
            "# TYPE consent_gateway_inventory_entries gauge",
        ]
        size = self.size
        if size is not None:
            lines += [f'consent_gateway_inventory_entries{{kind="{k}"}} {size.by_kind.get(k, 0)}' for k in KINDS]
            lines += [
                "# HELP consent_gateway_inventory_unclassified_hosts Third-party hosts in the stored inventory that "
                "nobody classified.",
                "# TYPE consent_gateway_inventory_unclassified_hosts gauge",
                f"consent_gateway_inventory_unclassified_hosts {size.unclassified_hosts}",
            ]
        lines += [
            "# TYPE consent_gateway_inventory_pending_entries gauge",
            f"consent_gateway_inventory_pending_entries {len(self.collector)}",
        ]
        return lines
