"""The time consent events are stamped with and retention purges by, when this machine's clock steps.

A wall clock can step: a VM resumed from a snapshot, a battery-less board booting in 1970 or 2036, an
operator's typo, NTP correcting any of these. An event stamped ten years ahead would survive every purge
(and, since a chain is purged as a prefix, pin every later event of its chain), and a purge run with such a
clock would delete every record of consent. So the gateway keeps a *reference* time and measures the wall
clock against it:

* with a store that has its own clock (Redis ``TIME``, PostgreSQL ``clock_timestamp()``), the reference is
  the store's time, read every :data:`SYNC_INTERVAL_S` and carried forward between reads by the monotonic
  clock (which never steps). Every instance then stamps by the same clock, so the store's server is the one
  clock that must be kept right (NTP): when it is the wrong one, retention still waits (the clocks
  disagree), but events are stamped by it;
* with SQLite (one file, one host: no second clock) the reference is this machine's own clock as last seen
  agreeing with itself, carried forward by the monotonic clock: a step while the gateway runs is noticed,
  a clock already wrong when it starts is not (retention's guard catches that one: ``ahead_at_start_ms``).

The rule, applied by the recorder to every event it chains:

1. while the wall clock is within :data:`TOLERANCE_MS` of the reference, events keep the wall clock's time
   (normal operation: nothing changes);
2. past that, events are stamped with the reference time instead, counted in ``clock_corrections_total``
   and shown in health (``clock``), and a warning is logged once per step;
3. an event is never stamped earlier than the previous event of its chain, so each chain's times never go
   back and a purge by time removes exactly a prefix of it.

Retention purges only while the two clocks agree (deleting is the one thing that cannot be undone): a
disagreement refuses the run until it is resolved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from consent_gateway import metrics
from consent_gateway.background import BackgroundTask
from consent_gateway.errors import StoreUnavailable

logger = logging.getLogger("consent_gateway.store.clock")

#: NTP-synchronised clocks differ by milliseconds; a resumed VM or a wrong clock differs by minutes or more.
TOLERANCE_MS: Final = 120_000
#: how often the store's clock is read again (the monotonic clock carries the time in between)
SYNC_INTERVAL_S: Final = 60.0
#: a read of the store's clock slower than this says little about the time: it is not used
_MAX_ROUND_TRIP_S: Final = 5.0


class LogClock:
    """Reference time for stamping events and purging them (see the module docstring for the rule).

    :param server_time: reads the store's clock in ms (None: the store has none, e.g. SQLite).
    :param wall: this machine's clock, seconds since the epoch (injectable: tests step it).
    :param monotonic: a clock that never steps, in seconds (injectable with ``wall``).
    """

    def __init__(
        self,
        server_time: Callable[[], Awaitable[int | None]] | None = None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tolerance_ms: int = TOLERANCE_MS,
        sync_interval_s: float = SYNC_INTERVAL_S,
    ) -> None:
        self._server_time = server_time
        self._wall = wall
        self._monotonic = monotonic
        self.tolerance_ms = tolerance_ms
        self.sync_interval_s = sync_interval_s
        #: where the reference comes from: the store's clock, or this machine's own
        self.source: Literal["store", "local"] = "local"
        #: reference: (monotonic seconds, reference time in ms then)
        self._ref: tuple[float, float] | None = None
        #: wall clock minus reference at the last reading, when beyond the tolerance (0: they agree)
        self.step_ms = 0
        #: how far this machine's clock was ahead of the log's newest event when the gateway started
        self.ahead_at_start_ms: int | None = None
        self._background = BackgroundTask("clock")

    # -- reading ------------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The reference time now: the wall clock's when it agrees with the reference, else the reference's."""
        wall_ms = self._wall() * 1000
        ref = self._ref
        if ref is None:
            return int(wall_ms)
        mono = self._monotonic()
        expected = ref[1] + (mono - ref[0]) * 1000
        if abs(wall_ms - expected) <= self.tolerance_ms:
            if self.step_ms:
                logger.warning("this machine's clock agrees with the %s clock again", self.source)
                self.step_ms = 0
            if self.source == "local":
                self._ref = (mono, wall_ms)  # follow the clock's slow NTP slewing; only a step is a step
            return int(wall_ms)
        step = int(wall_ms - expected)
        if not self.step_ms:
            logger.warning(
                "this machine's clock is %s the %s clock by %.0f s: consent events are stamped with the %s "
                "clock's time and retention waits until the clocks agree again",
                "ahead of" if step > 0 else "behind",
                "store's" if self.source == "store" else "gateway's own monotonic",
                abs(step) / 1000,
                self.source,
            )
        self.step_ms = step
        return int(expected)

    def correction_ms(self) -> int:
        """What to add to a wall-clock stamp taken just now to get the reference time (0 when they agree)."""
        now = self.now_ms()
        return now - int(self._wall() * 1000) if self.step_ms else 0

    @property
    def agrees(self) -> bool:
        """False while the wall clock and the reference differ by more than the tolerance."""
        self.now_ms()
        return self.step_ms == 0

    def state(self) -> dict[str, object]:
        """What health reports: where the reference comes from, and the step seen (0: none)."""
        self.now_ms()
        return {"source": self.source, "step_ms": self.step_ms, "ok": self.step_ms == 0}

    # -- keeping the reference --------------------------------------------------------------------------

    async def sync(self, *, newest_event_ms: int | None = None) -> None:
        """Read the store's clock (when it has one) and take it as the reference.

        :param newest_event_ms: the log's newest event, given once at start (retention's guard compares).
        """
        if newest_event_ms is not None and self.ahead_at_start_ms is None:
            self.ahead_at_start_ms = int(self._wall() * 1000) - newest_event_ms
        server: int | None = None
        if self._server_time is not None:
            before = self._monotonic()
            try:
                server = await asyncio.wait_for(self._server_time(), _MAX_ROUND_TRIP_S)
            except (StoreUnavailable, TimeoutError, OSError) as exc:
                logger.info("the store's clock was not read (%s); the last reference is kept", exc)
                server = None
                if self._ref is not None:
                    return
            after = self._monotonic()
            if server is not None and after - before <= _MAX_ROUND_TRIP_S:
                # the server read its clock somewhere within the round trip: take the middle
                self._ref = ((before + after) / 2, float(server))
                self.source = "store"
                self.now_ms()  # notices (and logs) a step at once
                return
        if self._ref is None:
            self._ref = (self._monotonic(), self._wall() * 1000)

    def start(self) -> None:
        """Read the store's clock again every ``sync_interval_s`` (only when the store has one)."""
        if self._server_time is not None:
            self._background.start(self._loop)

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval_s)
            await self.sync()


def count_correction(events: int) -> None:
    """``clock_corrections_total``: events stamped with the reference time rather than the wall clock's."""
    metrics.inc("clock_corrections_total", events)
