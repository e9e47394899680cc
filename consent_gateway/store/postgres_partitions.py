"""The PostgreSQL backend's DDL on a live connection: migrations on open, monthly partitions made and dropped.

`postgres_schema.py` holds the statements; this module runs them under advisory locks, so several gateway
instances sharing the database never race for a migration or a month.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import psycopg
from psycopg import sql as pgsql

from consent_gateway.errors import StoreUnavailable
from consent_gateway.store import aggregates
from consent_gateway.store.postgres_schema import (
    CREATE_STAGING,
    MIGRATIONS,
    create_partitions,
    month_ms,
    month_of_partition,
    next_month,
)

logger = logging.getLogger("consent_gateway.store.postgres")

Conn = psycopg.AsyncConnection[Any]

#: pg_advisory_xact_lock keys: one for migrations, one for creating partitions (any constant will do).
_MIGRATE_LOCK = 0x636F6E73656E74  # "consent"
_PARTITION_LOCK = _MIGRATE_LOCK + 1


async def migrate(conn: Conn, schema: str | None) -> None:
    """Bring the tables to this version's schema (each migration once) and create the staging tables."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        if schema is not None:
            await conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT max(version) FROM schema_version")).fetchone()
        current = (row[0] if row else None) or 0
        if current > len(MIGRATIONS):
            raise StoreUnavailable(
                f"database schema version {current} is newer than this consent-gateway knows "
                f"({len(MIGRATIONS)}); upgrade consent-gateway"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            logger.info("consent log schema migrated to version %d", version)
    for statement in CREATE_STAGING:
        await conn.execute(statement)


class MonthlyPartitions:
    """The months whose partitions exist (as far as this instance knows: a purge elsewhere may drop one)."""

    def __init__(self) -> None:
        self.months: set[dt.date] = set()

    async def load(self, conn: Conn) -> None:
        cur = await conn.execute(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass"
        )
        self.months = {m for (name,) in await cur.fetchall() if (m := month_of_partition(name)) is not None}

    async def create(self, conn: Conn, months: set[dt.date]) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            for month in sorted(months):
                for statement in create_partitions(month):
                    await conn.execute(statement)
        self.months |= months

    async def drop_whole_months(self, conn: Conn, before_ms: int) -> int:
        """Drop the partitions of months wholly before ``before_ms`` where every event goes; returns the count.

        A month keeps its partition when one of its events is still needed by its chain (an event stamped
        early but chained after a kept one, e.g. replayed from a spool): the row-by-row delete handles it.
        Runs inside the purge's transaction, which has filled ``purge_keep``.
        """
        deleted = 0
        for month in sorted(self.months):
            if month_ms(next_month(month)) > before_ms:
                continue
            suffix = f"p{month.year:04d}{month.month:02d}"
            events_part = pgsql.Identifier(f"events_{suffix}")
            cur = await conn.execute(
                pgsql.SQL(
                    "SELECT EXISTS (SELECT 1 FROM {} AS e JOIN purge_keep AS k USING (instance_id)"
                    " WHERE e.seq >= k.keep)"
                ).format(events_part)
            )
            row = await cur.fetchone()
            if row is None or row[0]:
                continue
            # The month's counters know its events exactly (a count(*) would read the whole partition), and
            # go with it: every event of the month goes.
            days = (month.isoformat(), next_month(month).isoformat())
            cur = await conn.execute(
                "SELECT coalesce(sum(total), 0) FROM aggregates WHERE dim = %s AND day >= %s AND day < %s",
                (aggregates.EVENTS, *days),
            )
            row = await cur.fetchone()
            deleted += int(row[0]) if row else 0
            await conn.execute("DELETE FROM aggregates WHERE day >= %s AND day < %s", days)
            await conn.execute(pgsql.SQL("DROP TABLE {}").format(events_part))
            await conn.execute(
                pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(f"event_personal_{suffix}"))
            )
            self.months.discard(month)
            logger.info("retention: dropped the partitions of %s", month.strftime("%Y-%m"))
        return deleted
