"""`LogKeeper`: the consent log and its recorder as the gateway's routes see them.

Opened lazily on first use, since not every server sends ASGI lifespan events; a log or spool that cannot
be opened never stops the site from being served. A spool that could not be opened is tried again (at most
every few seconds) when the next event comes, so a full disk at start does not refuse grants until a restart.

The instance id is leased in the store (``instance:<instance_id>``) while the gateway runs: a second live
process started with the same id records nothing (grants answer 503, health says so, and under ASGI
lifespan it does not start at all), since two writers of one chain would fork it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from consent_gateway import metrics
from consent_gateway.errors import SpoolError, StoreUnavailable
from consent_gateway.events import ConsentEvent
from consent_gateway.inventory.flusher import InventoryFlusher
from consent_gateway.store.base import ConsentLog
from consent_gateway.store.clock import LogClock
from consent_gateway.store.coordination import StoreLease, describe_holder
from consent_gateway.store.erasure_queue import ErasureQueue, QueuedErasure
from consent_gateway.store.proof import CheckpointWriter
from consent_gateway.store.recorder import EventRecorder
from consent_gateway.store.retention import RetentionTask, newest_event_ms

logger = logging.getLogger("consent_gateway.store.keeper")

#: how often a spool that could not be opened is tried again, at most
_SPOOL_RETRY_S = 5.0


class LogKeeper:
    """Starts the log and the recorder once, records events, and closes both at shutdown."""

    def __init__(
        self,
        log: ConsentLog,
        recorder: EventRecorder,
        checkpoints: CheckpointWriter | None = None,
        *,
        instance_lease: StoreLease | None = None,
        erasures: ErasureQueue | None = None,
        on_erasure_applied: Callable[[QueuedErasure, int], Awaitable[None]] | None = None,
        retention: RetentionTask | None = None,
        inventory: InventoryFlusher | None = None,
        clock: LogClock | None = None,
    ) -> None:
        self.log = log
        #: the reference time events are stamped and purged by (shared with the recorder and retention)
        self.clock = clock
        self.recorder = recorder
        #: writes the signed checkpoints outside the store while the gateway runs
        self.checkpoints = checkpoints
        #: this process's hold on its instance id in the store
        self.instance_lease = instance_lease
        #: False while neither the log nor the spool can take events
        self.recording = False
        #: why this process records nothing: another live process holds its instance id
        self.conflict: str | None = None
        self._spool_tried_at = 0.0
        #: erasures asked for while the log was down, applied here once it answers
        self.erasures = erasures
        self._on_erasure_applied = on_erasure_applied
        self._erasure_task: asyncio.Task[None] | None = None
        #: the gateway's own retention purge
        self.retention = retention
        #: merges what this instance saw of the site into the store's inventory
        self.inventory = inventory
        if instance_lease is not None:
            instance_lease.on_lost = self._refuse
        self._started = False
        self._start_lock = asyncio.Lock()

    async def ensure_started(self) -> None:
        """Open the log and replay the spool once."""
        if self._started:
            return
        async with self._start_lock:
            if not self._started:
                try:
                    await self.log.open()
                except Exception as exc:  # the site is still served; events wait in the spool
                    metrics.inc("store_errors_total", operation="open")
                    logger.error("the consent log could not be opened: %s", exc)
                self._started = True
                if not await self._lease_instance_id():
                    return
                await self._sync_clock()
                await self._start_recorder()
                if self.checkpoints is not None:
                    self.checkpoints.start()
                if self.instance_lease is not None:
                    self.instance_lease.start_renewing()
                if self.erasures is not None:
                    self._erasure_task = asyncio.create_task(self._apply_erasures(), name="consent-gateway erasures")
                if self.retention is not None:
                    self.retention.start()
                if self.inventory is not None:
                    self.inventory.start()

    async def _sync_clock(self) -> None:
        """Take the reference time before the first event is stamped (and the log's newest event then)."""
        clock = self.clock
        if clock is None:
            return
        try:
            newest = await asyncio.wait_for(newest_event_ms(self.log), 5.0)
        except (StoreUnavailable, TimeoutError, OSError):
            newest = None
        await clock.sync(newest_event_ms=newest)
        clock.start()

    async def _apply_erasures(self) -> None:
        """Apply queued erasures whenever the log answers (checked every second while any wait)."""
        queue = self.erasures
        assert queue is not None
        while True:
            if await asyncio.to_thread(lambda: queue.path.exists()):
                try:
                    await queue.apply(self.log, self._on_erasure_applied)
                except (StoreUnavailable, OSError, TimeoutError) as exc:
                    logger.info("queued erasures wait for the consent log: %s", exc)
                    with contextlib.suppress(StoreUnavailable, OSError, TimeoutError):
                        await asyncio.wait_for(self.log.open(), 2.0)
            await asyncio.sleep(1.0)

    async def _lease_instance_id(self) -> bool:
        """False when another live process holds this instance id (``conflict`` says which)."""
        lease = self.instance_lease
        if lease is None:
            return True
        try:
            if await lease.try_acquire():
                return True
        except (StoreUnavailable, OSError) as exc:
            logger.warning(
                "instance id lease %r not checked (the store did not answer: %s); checked when it does", lease.name, exc
            )
            return True
        self._refuse(lease.other or "")
        return False

    def _refuse(self, other: str) -> None:
        lease = self.instance_lease
        assert lease is not None
        self.conflict = (
            f"gateway.instance_id {lease.name.removeprefix('instance:')!r} is already in use: the lease "
            f"{lease.name!r} in the consent log is held by {describe_holder(other)}. Give each gateway process "
            "its own gateway.instance_id (or leave it empty: host name and process id); if that process is gone, "
            f"its lease expires within {lease.ttl_ms / 1000:g} s (at once when it ran on this host)."
        )
        logger.error("%s Consent events are refused meanwhile.", self.conflict)

    async def _start_recorder(self) -> None:
        self._spool_tried_at = time.monotonic()
        try:
            await self.recorder.start()
            self.recording = True
        except Exception as exc:  # no spool either: refusals still work, grants get a 503
            metrics.inc("store_errors_total", operation="spool_open")
            logger.error("the consent spool could not be opened: %s", exc)

    async def record(self, event: ConsentEvent) -> None:
        """Durable on return (log or spool); raises `SpoolError` when neither can keep it."""
        await self.ensure_started()
        if self.conflict is not None:
            raise SpoolError(self.conflict)
        if not self.recording and time.monotonic() - self._spool_tried_at >= _SPOOL_RETRY_S:
            async with self._start_lock:
                if not self.recording:
                    await self._start_recorder()
        if not self.recording:
            raise SpoolError("the consent spool is not open")
        await self.recorder.record(event)

    def state(self) -> dict[str, object]:
        """What health reports of this process's recording: instance lease and spool."""
        lease = self.instance_lease
        return {
            "instance_lease": "conflict" if self.conflict else (lease.state if lease is not None else "off"),
            "spool": {"ok": self.recording, "depth": self.recorder.spool_depth if self.recording else 0},
            "clock": self.clock.state() if self.clock is not None else {"source": "off"},
        }

    async def aclose(self) -> None:
        if self._started:
            if self.retention is not None:
                await self.retention.stop()
            if self.inventory is not None:
                await self.inventory.stop()  # with a last flush, while the log is still open
            if self._erasure_task is not None:
                self._erasure_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._erasure_task
                self._erasure_task = None
            if self.checkpoints is not None:
                await self.checkpoints.stop()
            if self.clock is not None:
                await self.clock.stop()
            if self.recording:
                await self.recorder.stop()
                self.recording = False
            if self.instance_lease is not None:
                await self.instance_lease.release()
            await self.log.close()
            self._started = False
