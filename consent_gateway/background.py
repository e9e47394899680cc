"""One periodic job a gateway component runs in the background while the gateway runs (a flush, a purge,
a checkpoint, a clock reading): started once, cancelled at stop. What the job does when the store does not
answer is the component's own business."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = f"consent-gateway {name}"
        self._task: asyncio.Task[None] | None = None

    def start(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``job`` (a loop of its own) unless it already runs."""
        if self._task is None:
            self._task = asyncio.create_task(job(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
