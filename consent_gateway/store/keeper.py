"""`LogKeeper`: the consent log and its recorder as the gateway's routes see them.

Opened lazily on first use, since not every server sends ASGI lifespan events; a log or spool that cannot
be opened never stops the site from being served.
"""

from __future__ import annotations

import asyncio
import logging

from consent_gateway import metrics
from consent_gateway.errors import SpoolError
from consent_gateway.events import ConsentEvent
from consent_gateway.store.base import ConsentLog
from consent_gateway.store.proof import CheckpointWriter
from consent_gateway.store.recorder import EventRecorder

logger = logging.getLogger("consent_gateway.store.keeper")


class LogKeeper:
    """Starts the log and the recorder once, records events, and closes both at shutdown."""

    def __init__(self, log: ConsentLog, recorder: EventRecorder, checkpoints: CheckpointWriter | None = None) -> None:
        self.log = log
        self.recorder = recorder
        #: writes the signed checkpoints outside the store while the gateway runs
        self.checkpoints = checkpoints
        #: False while neither the log nor the spool can take events
        self.recording = False
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
                try:
                    await self.recorder.start()
                    self.recording = True
                except Exception as exc:  # no spool either: refusals still work, grants get a 503
                    metrics.inc("store_errors_total", operation="spool_open")
                    logger.error("the consent spool could not be opened: %s", exc)
                if self.checkpoints is not None:
                    self.checkpoints.start()
                self._started = True

    async def record(self, event: ConsentEvent) -> None:
        """Durable on return (log or spool); raises `SpoolError` when neither can keep it."""
        await self.ensure_started()
        if not self.recording:
            raise SpoolError("the consent spool is not open")
        await self.recorder.record(event)

    async def aclose(self) -> None:
        if self._started:
            if self.checkpoints is not None:
                await self.checkpoints.stop()
            if self.recording:
                await self.recorder.stop()
            await self.log.close()
            self._started = False
