"""Keeps every banner version shown in the consent log, by its hash, the first time it is served.

A consent event records only the banner's version (a hash); without the texts, categories and vendors
behind it, the hash proves nothing once the banner changes. So the first page (or consent event) that
shows a version asks for it to be archived — in a task of its own, never on the visitor's request path —
once per version per instance (the log keeps the first archive of a version and ignores the others). The
banner changes without a restart when the privacy team classifies a vendor, so each version is tracked.
A log that does not answer is tried again on a later page, at most every `RETRY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from . import metrics
from .banner import Banner
from .store.keeper import LogKeeper

logger = logging.getLogger("consent_gateway.banner_archive")

RETRY_SECONDS: Final = 30.0
#: Versions remembered as archived; a few exist per process in practice (one per classification change).
_REMEMBERED: Final = 1024


class BannerArchive:
    def __init__(self, keeper: LogKeeper) -> None:
        self._keeper = keeper
        self._archived: set[str] = set()
        self._under_way: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        #: the banner last found archived: the page path's test is then one identity comparison
        self._last: Banner | None = None

    def is_archived(self, version: str) -> bool:
        return version in self._archived

    def note_served(self, banner: Banner) -> None:
        """``banner`` was just served: archive its version unless done, under way, or waiting to retry."""
        if banner is self._last:
            return
        version = banner.version
        if version in self._archived:
            self._last = banner
            return
        if version in self._under_way:
            return
        if self._retry_at and time.monotonic() < self._retry_at.get(version, 0.0):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next page served will do it
            return
        self._under_way[version] = loop.create_task(
            self._archive(version, banner.archive_json), name="consent-gateway banner archive"
        )

    async def wait(self) -> None:
        """Until the archives under way are done: for shutdown and tests."""
        while self._under_way:
            await asyncio.gather(*self._under_way.values(), return_exceptions=True)

    async def _archive(self, version: str, document: str) -> None:
        try:
            await self._keeper.ensure_started()
            new = await self._keeper.log.archive_banner(version, document)
            if len(self._archived) >= _REMEMBERED:
                self._archived.clear()  # asking the log again is harmless: the first archive is kept
            self._archived.add(version)
            self._retry_at.pop(version, None)
            if new:
                logger.info("banner version %s archived in the consent log", version)
                metrics.inc("banner_versions_archived_total")
        except Exception as exc:  # the log's trouble must not reach a visitor: retried on a later page
            self._retry_at[version] = time.monotonic() + RETRY_SECONDS
            metrics.inc("store_errors_total", operation="archive_banner")
            logger.warning("banner version %s could not be archived yet: %r", version, exc)
        finally:
            self._under_way.pop(version, None)
