"""Login throttling: after N failures for one user name or one client address, refuse logins for a while.

Failures are counted per key (``user:<name>`` and ``ip:<address>``) within a sliding window; reaching the
limit locks the key. Unknown user names are counted like real ones, so a lockout says nothing about which
names exist. Counts live in this process: each instance of a multi-instance gateway counts for itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

#: A flood of made-up user names must not grow memory without bound; the oldest keys go first.
_MAX_KEYS: Final = 10_000


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginLimiter:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 15 * 60,
        lockout_seconds: float = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def locked_for(self, keys: Iterable[str]) -> float:
        """Seconds until every one of ``keys`` may try again (0 when none is locked)."""
        now = self._clock()
        remaining = 0.0
        for key in keys:
            record = self._records.get(key)
            if record is not None and record.locked_until > now:
                remaining = max(remaining, record.locked_until - now)
        return remaining

    def record_failure(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            record = self._records.pop(key, None) or _Record()
            record.failures = [t for t in record.failures if now - t < self.window_seconds]
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.locked_until = now + self.lockout_seconds
                record.failures.clear()
            self._records[key] = record
        while len(self._records) > _MAX_KEYS:
            self._records.popitem(last=False)

    def record_success(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._records.pop(key, None)
