"""The admin audit log: one JSON object per line for every dashboard action, appended and fsync'd.

Who looked at, exported or erased a visitor's data is itself something the site must be able to show, so
the file is only ever appended to (``O_APPEND``: concurrent instances do not interleave within a line).
Each line: ``{"time": ISO-8601 UTC, "user", "action", "target", "ip", "outcome", ...extra}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from starlette.concurrency import run_in_threadpool

from consent_gateway.config import Config

logger = logging.getLogger("consent_gateway.admin")

AUDIT_FILE_NAME: Final = "admin-audit.jsonl"
#: User-typed values (a failed login's name, a search filter) are cut so one line stays one short line.
_MAX_FIELD_CHARS: Final = 200


def audit_path(config: Config) -> Path:
    """Where the admin audit log is: ``[admin] audit_log``, or ``<data_dir>/admin-audit.jsonl``."""
    return Path(config.admin.audit_log) if config.admin.audit_log else config.data_path / AUDIT_FILE_NAME


class AuditLog:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()

    def write_sync(
        self,
        action: str,
        *,
        user: str | None,
        target: str | None = None,
        ip: str | None = None,
        outcome: str = "ok",
        **extra: Any,
    ) -> None:
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds"),
            "user": _cut(user),
            "action": action,
            "target": _cut(target),
            "ip": ip,
            "outcome": outcome,
        }
        record.update({key: _cut(value) if isinstance(value, str) else value for key, value in extra.items()})
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    async def write(
        self,
        action: str,
        *,
        user: str | None,
        target: str | None = None,
        ip: str | None = None,
        outcome: str = "ok",
        **extra: Any,
    ) -> bool:
        """Append one line; False (and a loud log) when the file cannot be written.

        The caller refuses exports and erasures it could not audit; a page view still shows.
        """
        try:
            await run_in_threadpool(self.write_sync, action, user=user, target=target, ip=ip, outcome=outcome, **extra)
        except OSError:
            logger.exception("could not write the admin audit log at %s", self.path)
            return False
        return True


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= _MAX_FIELD_CHARS:
        return value
    return value[:_MAX_FIELD_CHARS] + "…"
