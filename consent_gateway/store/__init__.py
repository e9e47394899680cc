"""The consent log: one interface, chosen by URL scheme.

``open_log("sqlite:///consent-data/consent.db")`` gives the embedded backend, ``open_log("redis://host:6379/0")``
the shared one (several gateway instances on one log), ``open_log("postgresql://user@host/db")`` the
system of record for sites that outgrow one machine (monthly partitions, personal fields apart). All keep
every event chained by hash (:mod:`consent_gateway.events`), so ``verify`` finds an edited, inserted or
deleted event, and with a :class:`Checkpoint` of the chain heads kept outside the store, a truncated tail too.

The visitor path never calls a backend directly: it goes through :class:`EventRecorder`
(``store/recorder.py``), which groups commits and falls back to the local spool.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from consent_gateway.errors import ConfigError
from consent_gateway.events import ChainHead
from consent_gateway.store.base import (
    STAT_GROUPS,
    Checkpoint,
    ConsentLog,
    EventFilter,
    EventPage,
    PurgeResult,
    StatRow,
    StoredDocument,
    VerifyResult,
)
from consent_gateway.store.recorder import EventRecorder

__all__ = [
    "STAT_GROUPS",
    "ChainHead",
    "Checkpoint",
    "ConsentLog",
    "EventFilter",
    "EventPage",
    "EventRecorder",
    "PurgeResult",
    "StatRow",
    "StoredDocument",
    "VerifyResult",
    "open_log",
]


def open_log(url: str, **options: Any) -> ConsentLog:
    """The backend for ``url`` (not opened yet: ``await log.open()``).

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``redis://host:port/db?prefix=cg``
    (``rediss://`` for TLS), ``redis+cluster://host:port?prefix=cg`` (a Redis Cluster, any one node;
    ``rediss+cluster://`` for TLS), ``postgresql://user@host:5432/db?schema=consent``. Options go to the backend's
    constructor.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from consent_gateway.store.sqlite import SQLiteConsentLog

        return SQLiteConsentLog(url, **options)
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        from consent_gateway.store.redis import RedisConsentLog

        return RedisConsentLog(url, **options)
    if scheme in ("postgresql", "postgres"):
        try:
            from consent_gateway.store.postgres import PostgresConsentLog
        except ImportError as exc:
            raise ConfigError(
                "store.url", f"{scheme}:// needs the driver: pip install 'consent-gateway[postgres]' ({exc})"
            ) from exc

        return PostgresConsentLog(url, **options)
    raise ConfigError(
        "store.url",
        f"unsupported store URL scheme {scheme!r} (use sqlite:///, redis://, redis+cluster:// or postgresql://)",
    )
