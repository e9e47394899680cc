"""The dashboard's sessions and login lockouts, kept in the consent log's store so they hold everywhere.

A logged-in session is valid only while the store lists it (``admin-session:<id>`` → user name): logout on
one instance ends it on every instance, and a restart does not bring it back. Login failures are counted
per key (``user:<name>``, ``ip:<address>``) in the store too, so a lockout holds on every instance and
across restarts. The signed cookie still carries the idle and absolute lifetimes (`admin/sessions.py`);
the store's own expiry only cleans up.

Lockout times are taken on the dashboard's clock (injectable, as for sessions) and stored as values; the
store's expiry (its own clock) only removes them once they cannot matter any more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from consent_gateway.admin.sessions import AdminSession
from consent_gateway.errors import StoreUnavailable
from consent_gateway.store import ConsentLog

logger = logging.getLogger("consent_gateway.admin")

_SESSION = "admin-session:"
_FAILURES = "admin-failures:"
_LOCKED = "admin-locked:"
#: sessions remembered as seen live (a bound, not a limit on sessions: past it the memory starts afresh)
_MAX_SEEN = 10_000


class SessionRegistry:
    """Which logged-in sessions are live, in the store.

    While the store cannot be reached, a session this process saw live in the store within the last
    ``grace_seconds`` (the idle timeout) is still let in, so the privacy team can go on working (an erasure
    asked for then is queued): a logout elsewhere during the outage could not have been written anyway.
    Logging in needs the store.
    """

    def __init__(self, log: ConsentLog, *, max_age_seconds: float, grace_seconds: float) -> None:
        self.log = log
        self._ttl_ms = int(max_age_seconds * 1000) + 60_000
        self._grace_seconds = grace_seconds
        #: session id → when the store last said it is live (monotonic seconds)
        self._seen: dict[str, float] = {}

    async def add(self, session: AdminSession) -> None:
        if session.user is not None:
            await self.log.state_put(_SESSION + session.sid, session.user, self._ttl_ms)

    async def is_live(self, session: AdminSession) -> bool:
        try:
            found = await self.log.state_get([_SESSION + session.sid])
        except StoreUnavailable:
            seen = self._seen.get(session.sid)
            if seen is not None and time.monotonic() - seen < self._grace_seconds:
                logger.warning("the store is unreachable: session of %s let in on its last known state", session.user)
                return True
            raise
        live = session.user is not None and found.get(_SESSION + session.sid) == session.user
        if live:
            if len(self._seen) >= _MAX_SEEN:
                self._seen.clear()
            self._seen[session.sid] = time.monotonic()
        else:
            self._seen.pop(session.sid, None)
        return live

    async def remove(self, session: AdminSession) -> None:
        self._seen.pop(session.sid, None)
        await self.log.state_delete([_SESSION + session.sid])


class LoginLimiter:
    """After ``max_failures`` failures of one key within a window, refuse that key for a while.

    Failures are counted in fixed windows of ``window_seconds`` on the dashboard's clock. Unknown user names
    are counted like real ones, so a lockout says nothing about which names exist.
    """

    def __init__(
        self,
        log: ConsentLog,
        *,
        max_failures: int = 5,
        window_seconds: float = 15 * 60,
        lockout_seconds: float = 15 * 60,
        clock: Callable[[], float],
    ) -> None:
        self.log = log
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._clock = clock

    async def locked_for(self, keys: Iterable[str]) -> float:
        """Seconds until every one of ``keys`` may try again (0 when none is locked)."""
        now = self._clock()
        found = await self.log.state_get([_LOCKED + key for key in keys])
        remaining = 0.0
        for value in found.values():
            try:
                remaining = max(remaining, float(value) - now)
            except ValueError:
                continue
        return remaining

    async def record_failure(self, keys: Iterable[str]) -> None:
        now = self._clock()
        window = int(now // self.window_seconds) if self.window_seconds > 0 else 0
        for key in keys:
            count = await self.log.state_incr(f"{_FAILURES}{key}:{window}", int(self.window_seconds * 1000) + 1)
            if count >= self.max_failures:
                until = now + self.lockout_seconds
                await self.log.state_put(_LOCKED + key, repr(until), int(self.lockout_seconds * 1000) + 1)
                await self.log.state_delete([f"{_FAILURES}{key}:{window}"])

    async def record_success(self, keys: Iterable[str]) -> None:
        now = self._clock()
        window = int(now // self.window_seconds) if self.window_seconds > 0 else 0
        await self.log.state_delete([f"{_FAILURES}{key}:{window}" for key in keys])
