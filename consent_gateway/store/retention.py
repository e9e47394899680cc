"""Retention: what the gateway's own retention task and ``logs purge`` share.

The gateway purges by itself every ``[retention] run_interval_hours`` (0: only ``logs purge``), one
instance at a time: the run takes the store lease ``retention`` and, once done, leaves a mark in the store
so the other instances skip that interval. The first run comes a minute after start.

Both refuse to purge when this machine's clock is more than ``[retention] clock_guard_days`` ahead of the
newest event in the log: a clock ten years ahead would otherwise delete every record of consent
(``logs purge --force`` overrides; the gateway only logs the refusal and tries again next interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from consent_gateway import metrics
from consent_gateway.config_sections import RetentionConfig
from consent_gateway.errors import StoreUnavailable
from consent_gateway.store.base import ConsentLog, EventFilter, PurgeResult
from consent_gateway.store.coordination import StoreLease

logger = logging.getLogger("consent_gateway.store.retention")

DAY_MS = 86_400_000
#: the mark a finished run leaves, so other instances skip this interval
_DONE = "retention:done"
#: delay of the first run after start
FIRST_RUN_DELAY_S = 60.0


def format_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


@dataclass(frozen=True, slots=True)
class Cutoffs:
    now_ms: int
    events_before_ms: int
    ip_before_ms: int


def cutoffs(now_ms: int, *, events_days: int, ip_days: int) -> Cutoffs:
    return Cutoffs(now_ms, now_ms - events_days * DAY_MS, now_ms - ip_days * DAY_MS)


async def newest_event_ms(log: ConsentLog) -> int | None:
    page = await log.query(EventFilter(), limit=1)
    return page.events[0].timestamp_ms if page.events else None


def clock_problem(now_ms: int, newest_ms: int | None, guard_days: float) -> str | None:
    """Why this machine's clock cannot be trusted for a purge (None when it can)."""
    if newest_ms is None or guard_days <= 0 or now_ms - newest_ms <= guard_days * DAY_MS:
        return None
    return (
        f"this machine's clock ({format_ms(now_ms)} UTC) is {(now_ms - newest_ms) / DAY_MS:.0f} days ahead of the "
        f"newest event in the log ({format_ms(newest_ms)} UTC), more than [retention] clock_guard_days "
        f"({guard_days:g}): a clock far ahead would delete records that must be kept. Check the clock"
    )


class RetentionTask:
    """Purges the log every ``run_interval_hours`` while the gateway runs (one instance at a time)."""

    def __init__(
        self,
        log: ConsentLog,
        retention: RetentionConfig,
        *,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.retention = retention
        self.interval_s = retention.run_interval_hours * 3600
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="consent-gateway retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_RUN_DELAY_S)
        while True:
            try:
                await self.run_once()
            except (StoreUnavailable, OSError) as exc:
                metrics.inc("store_errors_total", operation="retention")
                logger.warning("retention did not run (the store did not answer: %s); next try in an hour", exc)
                await asyncio.sleep(min(3600.0, self.interval_s))
                continue
            await asyncio.sleep(self.interval_s)

    async def run_once(self) -> PurgeResult | None:
        """One purge, unless another instance runs one or ran one this interval, or the clock is suspect."""
        lease = StoreLease(self.log, "retention", ttl_s=self.lease_seconds)
        if not await lease.try_acquire():
            logger.info("retention: another instance is purging (%s)", lease.other)
            return None
        lease.start_renewing()
        try:
            if await self.log.state_get([_DONE]):
                return None
            now_ms = int(self.clock() * 1000)
            problem = clock_problem(now_ms, await newest_event_ms(self.log), self.retention.clock_guard_days)
            if problem is not None:
                metrics.inc("retention_refused_total")
                logger.error("retention refused: %s (or run `logs purge --force`).", problem)
                return None
            cut = cutoffs(now_ms, events_days=self.retention.events_days, ip_days=self.retention.ip_days)
            result = await self.log.purge(events_before_ms=cut.events_before_ms, ip_before_ms=cut.ip_before_ms)
            pruned = await self.log.prune_inventory(seen_before_ms=now_ms - self.retention.inventory_days * DAY_MS)
            await self.log.state_put(_DONE, str(now_ms), max(1000, int(self.interval_s * 1000) - 60_000))
            logger.info(
                "retention: deleted %d events before %s UTC, removed %d IPs before %s UTC, %d inventory entries",
                result.events_deleted,
                format_ms(cut.events_before_ms),
                result.ips_removed,
                format_ms(cut.ip_before_ms),
                pruned,
            )
            return result
        finally:
            await lease.release()
