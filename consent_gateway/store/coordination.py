"""Coordination between gateway instances through the store: leases, and short-lived shared state.

Every backend keeps a small table (Redis: keys) of named values with an expiry, apart from the events:

- a **lease** names one holder for a while (``instance:<instance_id>`` while a gateway runs under that id,
  ``retention`` while one instance purges). It is taken if free, expired or already ours, renewed in the
  background, released at shutdown; a holder killed with ``kill -9`` loses it when its TTL runs out.
- **shared state** (the dashboard's sessions and login failures) holds on every instance and across
  restarts, which a process's memory does not.

Times are the store's own where it has one (Redis key expiry, PostgreSQL's clock), so instances whose
clocks differ still agree on when a lease or a session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from consent_gateway import metrics
from consent_gateway.errors import StoreUnavailable
from consent_gateway.store.base import ConsentLog

logger = logging.getLogger("consent_gateway.store.coordination")

#: when this module was imported: every holder this process makes is younger
_PROCESS_STARTED_MS = int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease: host name, process id, when it started, and a token unique to this process."""

    host: str
    pid: int
    since_ms: int
    token: str

    @classmethod
    def of_this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), int(time.time() * 1000), secrets.token_hex(6))

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.since_ms}/{self.token}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            host, pid, since_ms, token = text.rsplit("/", 3)
            return cls(host, int(pid), int(since_ms), token)
        except ValueError:
            return None

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since_ms / 1000))
        return f"process {self.pid} on host {self.host!r}, running since {since}"

    def is_gone_from_here(self, here: Holder) -> bool:
        """True when this holder was a process on this host that is not running any more.

        A holder with our own pid on our host that started before this process did is an earlier life of
        it (a container restarted with the same host name and pid 1); any other pid is checked with signal 0.
        """
        if self.host != here.host:
            return False
        if self.pid == here.pid:
            return self.since_ms < _PROCESS_STARTED_MS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, under another user
            return False
        return False


class LeaseConflict(Exception):
    """The lease is held by another live holder."""

    def __init__(self, name: str, holder: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder


def describe_holder(text: str) -> str:
    holder = Holder.parse(text)
    return holder.describe() if holder is not None else repr(text)


class StoreLease:
    """One named lease in the store, held by this process while it runs.

    :param ttl_s: how long the lease outlives its holder's last renewal; renewed every third of it.
    :param on_lost: called (once) when a renewal finds the lease taken by someone else.
    """

    def __init__(
        self,
        log: ConsentLog,
        name: str,
        *,
        ttl_s: float,
        holder: Holder | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease needs a positive TTL")
        self.log = log
        self.name = name
        self.ttl_ms = int(ttl_s * 1000)
        self.holder = holder or Holder.of_this_process()
        self.on_lost = on_lost
        #: "held", "conflict" (another holder has it), or "unchecked" (the store did not answer yet)
        self.state = "unchecked"
        #: the other holder, while ``state == "conflict"``
        self.other: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self.state == "held"

    async def try_acquire(self) -> bool:
        """Take or renew the lease; False when another live holder has it (``other`` names it).

        A holder that was a process of this host that is gone is replaced at once, without waiting for its
        TTL. Raises :class:`StoreUnavailable` when the store does not answer.
        """
        mine = str(self.holder)
        found = await self.log.lease(self.name, mine, self.ttl_ms)
        if found != mine:
            previous = Holder.parse(found)
            if previous is not None and previous.is_gone_from_here(self.holder):
                logger.warning("lease %r: taking over from %s, which is gone", self.name, previous.describe())
                found = await self.log.lease(self.name, mine, self.ttl_ms, take_from=found)
        if found == mine:
            self.state, self.other = "held", None
            return True
        self.state, self.other = "conflict", found
        return False

    def start_renewing(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._renew_loop(), name=f"consent-gateway lease {self.name}")

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            was_held = self.held
            try:
                got = await self.try_acquire()
            except (StoreUnavailable, OSError) as exc:
                metrics.inc("store_errors_total", operation="lease")
                logger.info("lease %r not renewed (the store did not answer: %s)", self.name, exc)
                continue
            if not got and self.on_lost is not None:
                logger.error(
                    "lease %r is held by %s%s",
                    self.name,
                    describe_holder(self.other or ""),
                    " (it expired while the store did not answer)" if was_held else "",
                )
                self.on_lost(self.other or "")
                return

    async def release(self) -> None:
        """Stop renewing and give the lease back (if this process holds it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.held:
            try:
                await self.log.release_lease(self.name, str(self.holder))
            except (StoreUnavailable, OSError) as exc:
                logger.warning("lease %r not released (it expires by itself): %s", self.name, exc)
            self.state = "unchecked"
