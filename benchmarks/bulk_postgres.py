"""A bulk loader for the scale benchmark: chained events COPYed straight into an empty PostgreSQL log.

It writes the rows the append path (``PostgresConsentLog.append``) writes, built by the same functions
(``record_row``, ``personal_row``, ``aggregates.Cells``), but skips what only matters when the log already
holds events or several writers share it: the per-batch staging tables, the ``ON CONFLICT`` move, the
advisory locks and the visitor-day ``NOT EXISTS`` probes. So it refuses a log that is not empty (or knows
of an erasure), and its events must be distinct by id. The counters are summed in this process over the
whole load and written once at the end with the chain heads, in the append path's own statements.

``tests/store/test_bulk_load.py`` proves the identity on a sample: the same chained events appended to one
schema and bulk-loaded into another leave equal rows in every table, and ``logs verify`` passes.

The COPY of a chunk runs on a thread of its own with a connection of its own, so the server stores one chunk
while the caller chains the next (the load was a relay: the client idle while the server wrote, the server
idle while the client chained). Chunks are still stored one at a time, in order, each in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql as pgsql

from consent_gateway.events import ConsentEvent
from consent_gateway.store import aggregates
from consent_gateway.store.postgres import PostgresConsentLog
from consent_gateway.store.postgres_schema import (
    ADD_CELLS,
    PERSONAL_COLUMNS,
    RECORD_COLUMNS,
    UPSERT_HEADS,
    month_start,
    personal_row,
    record_row,
)

COPY_EVENTS = f"COPY events ({', '.join(RECORD_COLUMNS)}) FROM STDIN"
COPY_PERSONAL = f"COPY event_personal (event_id, timestamp_ms, {', '.join(PERSONAL_COLUMNS)}) FROM STDIN"
#: The secondary indexes of the two partitioned tables (not their primary keys), as ``CREATE INDEX``
#: statements: a load drops them and makes them again at its end, a sorted build per partition instead of
#: ten indexes (one a GIN) kept row by row, which cost the server most of a COPY.
SECONDARY_INDEXES = (
    "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
    " JOIN pg_class AS t ON t.oid = i.indrelid JOIN pg_namespace AS n ON n.oid = t.relnamespace"
    " WHERE n.nspname = current_schema() AND t.relname IN ('events', 'event_personal') AND NOT i.indisprimary"
    " ORDER BY c.oid"
)


class BulkLoadRefused(Exception):
    """The log is not empty, or the events are not what a bulk load can store as the append path would."""


class PostgresBulkLoader:
    """``await add(events)`` per chunk (one transaction each), then ``await finish()`` for the indexes, the
    counters and the chain heads. Until ``finish`` the dashboard's counters lag the rows, and the tables have
    only their primary keys (a load that fails leaves a log to drop, not to use)."""

    def __init__(self, log: PostgresConsentLog) -> None:
        self.log = log
        self.cells = aggregates.Cells()
        self.visitors: dict[str, set[str]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.loaded = 0
        self._checked = False
        #: the dropped secondary indexes' definitions, made again by ``finish``
        self._indexes: list[str] = []
        self._writer: ThreadPoolExecutor | None = None
        self._conn: psycopg.Connection[Any] | None = None
        #: the chunk being COPYed by the writer thread, counted once it is stored
        self._pending: tuple[Future[None], list[ConsentEvent]] | None = None

    async def _check_empty(self, conn: Any) -> None:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM erasures)"
            " OR EXISTS (SELECT 1 FROM chain_heads) OR EXISTS (SELECT 1 FROM aggregates)"
        )
        row = await cur.fetchone()
        if row is None or row[0]:
            raise BulkLoadRefused("a bulk load needs an empty log (no event, erasure, chain head or counter)")
        cur = await conn.execute(SECONDARY_INDEXES)
        indexes = await cur.fetchall()
        for name, _ in indexes:
            await conn.execute(pgsql.SQL("DROP INDEX {}").format(pgsql.Identifier(name)))
        # the parent's definition reads ``ON ONLY events``: made again without ONLY, it is built on every partition
        self._indexes = [definition.replace(" ON ONLY ", " ON ", 1) for _, definition in indexes]
        self._checked = True

    async def add(self, events: Iterable[ConsentEvent]) -> None:
        batch = list(events)
        if not batch:
            return
        if any(e.erased_at_ms is not None or not e.instance_id or not e.hash for e in batch):
            raise BulkLoadRefused("a bulk load takes chained events that are not erased")
        records = [record_row(e) for e in batch]
        personal = [row for e in batch if (row := personal_row(e)) is not None]
        months = {month_start(e.timestamp_ms) for e in batch}

        known = self.log._partitions
        if not self._checked or not months <= known.months:
            # a new month's partition is made while no COPY holds the parent table (PostgreSQL locks it)
            await self._settle()

            async def prepare(conn: Any) -> None:
                if not self._checked:
                    await self._check_empty(conn)
                if not months <= known.months:
                    await known.create(conn, months - known.months)

            await self.log._write("bulk load", prepare)
        previous, self._pending = self._pending, None
        if previous is not None:
            await asyncio.wrap_future(previous[0])
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="bulk-copy")
        self._pending = (self._writer.submit(self._copy, records, personal), batch)
        if previous is not None:  # counted while the server stores this chunk
            self._count(previous[1])

    def _copy(self, records: list[list[Any]], personal: list[list[Any]]) -> None:
        """One chunk in one transaction, on the writer thread (its blocking socket writes let go of the GIL)."""
        if self._conn is None:
            self._conn = psycopg.connect(self.log._conninfo, autocommit=True)
            if self.log.schema is not None:
                self._conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.log.schema)))
        with self._conn.transaction():
            cur = self._conn.cursor()
            with cur.copy(COPY_EVENTS) as copy:
                for row in records:
                    copy.write_row(row)
            if personal:
                with cur.copy(COPY_PERSONAL) as copy:
                    for row in personal:
                        copy.write_row(row)

    async def _settle(self) -> None:
        """Wait for the chunk in flight (its error is raised here), then count it."""
        if self._pending is None:
            return
        future, batch = self._pending
        self._pending = None
        await asyncio.wrap_future(future)
        self._count(batch)

    def _count(self, batch: list[ConsentEvent]) -> None:
        # counted only once stored: a refused chunk (a duplicate id) counts nothing
        self.cells.add_events(batch)
        for e in batch:
            day = aggregates.day_of(e.timestamp_ms)
            self.visitors.setdefault(day, set()).add(e.consent_id)
            head = self.heads.get(e.instance_id)
            if head is None or e.seq > head[0]:
                self.heads[e.instance_id] = (e.seq, e.hash)
        self.loaded += len(batch)

    def close(self) -> None:
        """Stop the writer thread and close its connection (``finish`` does; call it when a load fails)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def finish(self) -> None:
        """Write the counters (with the visitor-days) and the chain heads, in one transaction; the per-visitor
        counters (each visitor's latest choice per day and month) by the migration's own statement, over the
        loaded rows (in this process they would hold every visitor's latest event)."""
        try:
            await self._settle()
        finally:
            self.close()
        rows = self.cells.rows()
        rows += [(day, aggregates.VISITORS, "", "", len(ids), 0) for day, ids in sorted(self.visitors.items())]
        heads = sorted(self.heads.items())
        head_params = [[i for i, _ in heads], [s for _, (s, _) in heads], [h for _, (_, h) in heads]]

        async def run(conn: Any) -> None:
            for definition in self._indexes:
                await conn.execute(definition)
            self._indexes = []
            async with conn.transaction():
                if rows:
                    await conn.execute(ADD_CELLS, [list(column) for column in zip(*rows, strict=True)])
                if heads:
                    await conn.execute(UPSERT_HEADS, head_params)
                await conn.execute(aggregates.visitors_backfill(aggregates.POSTGRES))

        await self.log._write("bulk load", run)
        self.cells = aggregates.Cells()
        self.visitors = {}
