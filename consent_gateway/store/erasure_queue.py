"""Erasures asked for while the consent log cannot be reached: kept on disk, applied when it answers.

An erasure is never refused because the store is down. The request is appended, fsync'd, to
``<spool folder>/erasures.queue`` (framed and checksummed like the spool, mode 0600) and the gateway's
recorder applies the queue as soon as the log answers again (``ConsentLog.erase``, which also marks the
consent id erased, so events of it still waiting in a spool are stored erased on arrival). Queued requests
of the CLI (``logs erase`` while the store is down) are applied by a gateway sharing the spool folder, or by
``logs erase --apply-queued``.

A lock file serialises writers (the gateway, its dashboard and the CLI may all add to the queue); applied
requests are removed by rewriting the file under that lock, so a request added meanwhile is kept.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from consent_gateway.store.base import ConsentLog
from consent_gateway.store.spool import frame, unframe

logger = logging.getLogger("consent_gateway.store.erasure_queue")

QUEUE_FILE = "erasures.queue"


@dataclass(frozen=True, slots=True)
class QueuedErasure:
    consent_id: str
    requested_at_ms: int
    #: who asked (a dashboard user, ``cli:<login>``), for the audit log
    requested_by: str


class ErasureQueue:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / QUEUE_FILE
        self._lock_path = Path(folder) / (QUEUE_FILE + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def add(self, consent_id: str, requested_by: str, *, now_ms: int | None = None) -> QueuedErasure:
        """Append one request, durable on return (raises ``OSError`` when the disk cannot keep it)."""
        request = QueuedErasure(consent_id, now_ms if now_ms is not None else int(time.time() * 1000), requested_by)
        record = frame({"consent_id": consent_id, "at": request.requested_at_ms, "by": requested_by})
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                try:
                    os.write(fd, record)
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # no torn record left behind
                    raise
            finally:
                os.close(fd)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return request

    def pending(self) -> list[QueuedErasure]:
        """Every request not applied yet, oldest first (a damaged record is skipped and logged)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        found: list[QueuedErasure] = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(unframe(line))
                found.append(QueuedErasure(str(raw["consent_id"]), int(raw["at"]), str(raw["by"])))
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("skipping a damaged record of the erasure queue %s: %s", self.path, exc)
        return found

    def _remove(self, done: set[QueuedErasure]) -> None:
        with self._locked():
            left = [r for r in self.pending() if r not in done]
            if not left:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_name(QUEUE_FILE + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(
                    fd,
                    b"".join(
                        frame({"consent_id": r.consent_id, "at": r.requested_at_ms, "by": r.requested_by}) for r in left
                    ),
                )
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)

    async def apply(
        self, log: ConsentLog, on_applied: Callable[[QueuedErasure, int], Awaitable[None]] | None = None
    ) -> int:
        """Erase every queued consent id in the log; returns how many requests were applied.

        Stops at the first failure (the log is down again): what was applied is removed, the rest waits.
        """
        requests = await asyncio.to_thread(self.pending)
        done: set[QueuedErasure] = set()
        try:
            for request in requests:
                erased = await log.erase(request.consent_id)
                done.add(request)
                logger.info("queued erasure of %s applied: %d events", request.consent_id, erased)
                if on_applied is not None:
                    await on_applied(request, erased)
        finally:
            if done:
                await asyncio.to_thread(self._remove, done)
        return len(done)
