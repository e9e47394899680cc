"""A bulk loader for the scale benchmark: chained events COPYed straight into an empty PostgreSQL log.

It writes the rows the append path (``PostgresConsentLog.append``) writes, built by the same functions
(``record_row``, ``personal_row``, ``aggregates.Cells``), but skips what only matters when the log already
holds events or several writers share it: the per-batch staging tables, the ``ON CONFLICT`` move, the
advisory locks and the visitor-day ``NOT EXISTS`` probes. So it refuses a log that is not empty (or knows
of an erasure), and its events must be distinct by id. The counters are summed in this process over the
whole load and written once at the end with the chain heads, in the append path's own statements.

``tests/store/test_bulk_load.py`` proves the identity on a sample: the same chained events appended to one
schema and bulk-loaded into another leave equal rows in every table, and ``logs verify`` passes.
"""



from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


class BulkLoadRefused(Exception):
    """The log is not empty, or the events are not what a bulk load can store as the append path would."""


class PostgresBulkLoader:
    """``await add(events)`` per chunk (one transaction each), then ``await finish()`` for the counters and
    the chain heads. Until ``finish`` the dashboard's counters lag the rows."""

    def __init__(self, log: PostgresConsentLog) -> None:
        self.log = log
        self.cells = aggregates.Cells()
        self.visitors: dict[str, set[str]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.loaded = 0
        self._checked = False

    async def _check_empty(self, conn: Any) -> None:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM erasures)"
            " OR EXISTS (SELECT 1 FROM chain_heads) OR EXISTS (SELECT 1 FROM aggregates)"
        )
        row = await cur.fetchone()
        if row is None or row[0]:
            raise BulkLoadRefused("a bulk load needs an empty log (no event, erasure, chain head or counter)")
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

        async def run(conn: Any) -> None:
            if not self._checked:
                await self._check_empty(conn)
            known = self.log._partitions
            if not months <= known.months:
                await known.create(conn, months - known.months)
            async with conn.transaction():
                cur = conn.cursor()
                async with cur.copy(COPY_EVENTS) as copy:
                    for row in records:
                        await copy.write_row(row)
                if personal:
                    async with cur.copy(COPY_PERSONAL) as copy:
                        for row in personal:
                            await copy.write_row(row)

        await self.log._write("bulk load", run)
        # counted only once stored: a refused chunk (a duplicate id) counts nothing
        self.cells.add_events(batch)
        for e in batch:
            day = aggregates.day_of(e.timestamp_ms)
            self.visitors.setdefault(day, set()).add(e.consent_id)
            head = self.heads.get(e.instance_id)
            if head is None or e.seq > head[0]:
                self.heads[e.instance_id] = (e.seq, e.hash)
        self.loaded += len(batch)

    async def finish(self) -> None:
        """Write the counters (with the visitor-days) and the chain heads, in one transaction; the per-visitor
        counters (each visitor's latest choice per day and month) by the migration's own statement, over the
        loaded rows (in this process they would hold every visitor's latest event)."""
        rows = self.cells.rows()
        rows += [(day, aggregates.VISITORS, "", "", len(ids), 0) for day, ids in sorted(self.visitors.items())]
        heads = sorted(self.heads.items())
        head_params = [[i for i, _ in heads], [s for _, (s, _) in heads], [h for _, (_, h) in heads]]

        async def run(conn: Any) -> None:
            async with conn.transaction():
                if rows:
                    await conn.execute(ADD_CELLS, [list(column) for column in zip(*rows, strict=True)])
                if heads:
                    await conn.execute(UPSERT_HEADS, head_params)
                await conn.execute(aggregates.visitors_backfill(aggregates.POSTGRES))

        await self.log._write("bulk load", run)
        self.cells = aggregates.Cells()
        self.visitors = {}
