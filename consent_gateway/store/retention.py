"""Retention: what the gateway's own retention task and ``logs purge`` share.

The gateway purges by itself every ``[retention] run_interval_hours`` (0: only ``logs purge``), one
instance at a time: the run takes the store lease ``retention`` and, once done, leaves a mark in the store
so the other instances skip that interval. The first run comes a minute after start.

Both refuse to purge when this machine's clock is more than ``[retention] clock_guard_days`` ahead of the
newest event in the log: a clock ten years ahead would otherwise delete every record of consent
(``logs purge --force`` overrides; the gateway only logs the refusal and tries again next interval).

A clock ahead also stamps new events ahead, and then the newest event no longer gives it away. So both
also refuse while this machine's clock and the store's (Redis, PostgreSQL) differ by more than
`store/clock.py`'s tolerance, and the gateway refuses while its `LogClock` sees a step, or (SQLite: no
second clock) when this machine's clock was already more than ``clock_guard_days`` ahead of the log's newest
event when the gateway started. The gateway purges by its reference time, never by a clock that stepped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from consent_gateway import metrics
from consent_gateway.background import BackgroundTask
from consent_gateway.config_sections import RetentionConfig
from consent_gateway.errors import StoreUnavailable
from consent_gateway.store.base import ConsentLog, EventFilter, PurgeResult
from consent_gateway.store.clock import TOLERANCE_MS, LogClock
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


def ahead_note(ahead: int) -> str | None:
    """What to tell about events stamped ahead of now (written before `store/clock.py` held stamps to a
    reference, or by a store clock that was wrong): a purge keeps them, and the later events of their chains."""
    if not ahead:
        return None
    return (
        f"{ahead} events are stamped more than {TOLERANCE_MS // 60_000} minutes ahead of now (a clock that was "
        "ahead wrote them): retention keeps them, and every later event of their chains, until their time comes"
    )


async def events_ahead(log: ConsentLog, now_ms: int) -> int:
    return await log.count(EventFilter(since_ms=now_ms + TOLERANCE_MS))


def store_clock_problem(now_ms: int, server_ms: int | None, tolerance_ms: int = TOLERANCE_MS) -> str | None:
    """Why a purge must wait when this machine's clock and the store's differ (None when they agree or the
    store has no clock of its own)."""
    if server_ms is None or abs(now_ms - server_ms) <= tolerance_ms:
        return None
    return (
        f"this machine's clock ({format_ms(now_ms)} UTC) is {abs(now_ms - server_ms) / 1000:.0f} s "
        f"{'ahead of' if now_ms > server_ms else 'behind'} the store's clock ({format_ms(server_ms)} UTC): "
        "one of them is wrong, and a purge by the wrong one deletes records that must be kept. Check both clocks"
    )


def reference_problem(clock: LogClock, guard_days: float) -> str | None:
    """Why the gateway's reference time cannot be trusted for a purge now (None when it can)."""
    if not clock.agrees:
        return (
            f"this machine's clock is {abs(clock.step_ms) / 1000:.0f} s {'ahead of' if clock.step_ms > 0 else 'behind'}"
            f" the {'store' if clock.source == 'store' else 'time the gateway kept since it started'}: "
            "retention waits until the clocks agree"
        )
    ahead = clock.ahead_at_start_ms
    if clock.source == "local" and guard_days > 0 and ahead is not None and ahead > guard_days * DAY_MS:
        return (
            f"when the gateway started, this machine's clock was {ahead / DAY_MS:.0f} days ahead of the newest event "
            f"in the log, more than [retention] clock_guard_days ({guard_days:g}), and the store has no clock of its "
            "own to tell which is right. Check the clock, then restart the gateway"
        )
    return None


class RetentionTask:
    """Purges the log every ``run_interval_hours`` while the gateway runs (one instance at a time)."""

    def __init__(
        self,
        log: ConsentLog,
        retention: RetentionConfig,
        *,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
        log_clock: LogClock | None = None,
    ) -> None:
        self.log = log
        #: the reference time (shared with the recorder); None: this machine's ``clock`` alone
        self.log_clock = log_clock
        self.retention = retention
        self.interval_s = retention.run_interval_hours * 3600
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._background = BackgroundTask("retention")

    def start(self) -> None:
        if self.interval_s > 0:
            self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

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
            guard_days = self.retention.clock_guard_days
            if self.log_clock is not None:
                await self.log_clock.sync()
                now_ms = self.log_clock.now_ms()
                problem = reference_problem(self.log_clock, guard_days)
            else:
                now_ms = int(self.clock() * 1000)
                problem = store_clock_problem(now_ms, await self.log.server_time_ms())
            problem = problem or clock_problem(now_ms, await newest_event_ms(self.log), guard_days)
            if problem is not None:
                metrics.inc("retention_refused_total")
                logger.error("retention refused: %s (or run `logs purge --force`).", problem)
                return None
            cut = cutoffs(now_ms, events_days=self.retention.events_days, ip_days=self.retention.ip_days)
            result = await self.log.purge(events_before_ms=cut.events_before_ms, ip_before_ms=cut.ip_before_ms)
            pruned = await self.log.prune_inventory(seen_before_ms=now_ms - self.retention.inventory_days * DAY_MS)
            await self.log.state_put(_DONE, str(now_ms), max(1000, int(self.interval_s * 1000) - 60_000))
            note = ahead_note(await events_ahead(self.log, now_ms))
            if note is not None:
                logger.warning("retention: %s", note)
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
