"""The consent log on PostgreSQL: the system of record for sites that outgrow one machine.

``postgresql://user@host:5432/db`` (``?schema=name`` keeps the tables in a schema of their own). Driver:
psycopg 3, async, chosen by measurement over asyncpg (batched appends through COPY, see the README). A
batch is one transaction: COPY into per-connection staging tables, then one ``INSERT … ON CONFLICT DO
NOTHING`` moves the new events on, so a retried batch is skipped event by event; the commit waits for
PostgreSQL's WAL flush (``synchronous_commit`` as the server sets it, ``on`` by default).

One connection writes and one reads (each behind a lock), as the SQLite backend has one writer and one
reader thread: the dashboard's queries never wait behind a batch. Several gateway instances may share the
database; monthly partitions are created under an advisory lock, so two writers never race for one.
"""

# SQL here is assembled only from constant fragments (column names, partition names made of digits, the
# WHERE clauses of ``where_clause``); every value goes through a ``%s`` placeholder.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import sql as pgsql
from psycopg.types.json import set_json_loads

from consent_gateway.errors import ConfigError, StoreUnavailable
from consent_gateway.events import (
    EVENT_FIELDS,
    ChainHead,
    ConsentEvent,
    LogKeys,
    anchor_text,
    event_from_values,
)
from consent_gateway.inventory.records import (
    HOST,
    KINDS,
    UNCLASSIFIED,
    InventoryEntry,
    InventoryPage,
    InventoryQuery,
    InventorySize,
    merge_all,
)
from consent_gateway.store import aggregates, inventory_sql
from consent_gateway.store.base import (
    STAT_GROUPS,
    VENDOR_CATEGORY,
    Checkpoint,
    DayCount,
    EventFilter,
    EventPage,
    PurgeResult,
    StatRow,
    StoredDocument,
    VerifyResult,
    decode_cursor,
    encode_cursor,
)
from consent_gateway.store.postgres_partitions import MonthlyPartitions, migrate
from consent_gateway.store.postgres_schema import (
    ADD_CELLS,
    COPY_EVENTS,
    COPY_PERSONAL,
    CREATE_PURGED,
    CREATE_STAGING,
    GROUP_EXPR,
    LATEST_AFTER,
    LATEST_BEFORE,
    LATEST_OF,
    LOCK_VISITOR_DAYS,
    MIGRATIONS,
    MOVE_STAGED,
    PERIOD_LOCKS,
    PURGED_PERIODS,
    PURGED_VISITOR_KEYS,
    SELECT,
    SHARE_PERIODS,
    SUBTRACT_CELLS,
    TAKE_PERIODS,
    UPSERT_HEADS,
    VISITOR_CHANGES,
    VISITOR_DAY_LOCKS,
    lock_keys,
    month_start,
    personal_row,
    record_row,
    where_clause,
)
from consent_gateway.store.postgres_verify import read_heads, verify_chains

__all__ = ["MIGRATIONS", "PostgresConsentLog"]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

_EXPORT_PAGE = 1000
_NO_SEQ = 2**63 - 1
_TIMESTAMP_INDEX = EVENT_FIELDS.index("timestamp_ms")


async def _latest_before(
    cur: psycopg.AsyncCursor[Any], keys: Sequence[aggregates.VisitorKey]
) -> dict[aggregates.VisitorKey, aggregates.Latest | None]:
    """Each (visitor, period)'s latest stored event: a lookup per (visitor, month), and per day only where the
    month's latest does not settle it (``aggregates.settle_days``); each round in one statement."""

    async def look_up(wanted: list[aggregates.VisitorKey]) -> dict[aggregates.VisitorKey, aggregates.Latest | None]:
        found: dict[aggregates.VisitorKey, aggregates.Latest | None] = dict.fromkeys(wanted)
        if wanted:
            await cur.execute(LATEST_OF, (orjson.dumps([[key[0], key[4], key[5]] for key in wanted]).decode(),))
            for i, timestamp_ms, event_id, categories in await cur.fetchall():
                found[wanted[i]] = (int(timestamp_ms), str(event_id), categories)
        return found

    months = await look_up([key for key in keys if key[1] == aggregates.VISITOR_MONTH])
    found, left = aggregates.settle_days(keys, months)
    found.update(await look_up(left))
    return found


def _redacted(url: str) -> str:
    """The URL without its password, for messages and health (a password must never reach a log)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc[-1]}"))


def _split_url(url: str) -> tuple[str, str | None]:
    """The libpq connection URL and the schema asked for by ``?schema=`` (ours, not libpq's)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError("store.url", f"expected postgresql://user@host:5432/database, got {_redacted(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not schema.replace("_", "").isalnum():
        raise ConfigError("store.url", f"schema {schema!r}: use letters, digits and underscores")
    conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
    return conninfo, schema


class PostgresConsentLog:
    """:class:`~consent_gateway.store.ConsentLog` on PostgreSQL (11 or later; declarative partitions)."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, log_keys: LogKeys | None = None) -> None:
        self.url = url
        #: verifies event and anchor MACs; purge anchors are written with the first key
        self.log_keys = log_keys
        self._conninfo, self.schema = _split_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._writer: Conn | None = None
        self._reader: Conn | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._opened = False
        self._partitions = MonthlyPartitions()

    # -- plumbing ---------------------------------------------------------------------------------------

    async def _connect(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
        )
        set_json_loads(orjson.loads, conn)
        if self.schema is not None:
            await conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        return conn

    async def _use(self, role: str, operation: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if not self._opened:
            raise StoreUnavailable(f"{_redacted(self.url)}: log not opened")
        lock = self._write_lock if role == "writer" else self._read_lock
        async with lock:
            try:
                conn = self._writer if role == "writer" else self._reader
                if conn is None or conn.closed or conn.broken:
                    conn = await self._connect()
                    if role == "writer":
                        self._writer = conn
                    else:
                        self._reader = conn
                return await fn(conn)
            except psycopg.Error as exc:
                message = f"postgresql {operation} failed: {str(exc).strip()}"
                raise StoreUnavailable(
                    message.replace(self._conninfo, _redacted(self._conninfo)), original_error=exc
                ) from exc

    async def _write(self, operation: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._use("writer", operation, fn)

    async def _read(self, operation: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._use("reader", operation, fn)

    # -- lifecycle --------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        try:
            await self._write("migrate", self._migrate)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: Conn) -> None:
        await migrate(conn, self.schema)
        await self._partitions.load(conn)

    async def close(self) -> None:
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None
        self._opened = False

    # -- writing ----------------------------------------------------------------------------------------

    async def append(self, events: Sequence[ConsentEvent]) -> None:
        if not events:
            return
        # one row per event id: a batch holding an event twice (a replay racing a retry) stores it once,
        # where the personal-data table's unique key would refuse the whole batch
        unique: dict[str, ConsentEvent] = {}
        for e in events:
            unique.setdefault(e.event_id, e)
        events = list(unique.values())
        records = [record_row(e) for e in events]
        personal = [row for e in events if (row := personal_row(e)) is not None]
        heads: dict[str, ConsentEvent] = {}
        for e in events:
            if e.instance_id not in heads or e.seq > heads[e.instance_id].seq:
                heads[e.instance_id] = e
        head_params = [list(heads), [e.seq for e in heads.values()], [e.hash for e in heads.values()]]
        months = {month_start(e.timestamp_ms) for e in events}
        visitor_keys = aggregates.visitor_keys(events)
        period_locks = lock_keys({f"{key[1]}/{key[2]}" for key in visitor_keys})
        visitor_locks = lock_keys({e.consent_id for e in events})

        async def run(conn: Conn) -> None:
            known = self._partitions
            if not months <= known.months:
                await known.create(conn, months - known.months)
            for statement in CREATE_STAGING:  # again after a reconnect: temp tables live per connection
                await conn.execute(statement)
            try:
                await copy_batch(conn)
            except psycopg.errors.CheckViolation:
                # "no partition of relation events found for row": a purge elsewhere dropped a month we
                # knew of. Learn the partitions again and retry once.
                await known.load(conn)
                await known.create(conn, months - known.months)
                await copy_batch(conn)

        async def copy_batch(conn: Conn) -> None:
            async with conn.transaction():
                cur = conn.cursor()
                async with cur.copy(COPY_EVENTS) as copy:
                    for row in records:
                        await copy.write_row(row)
                if personal:
                    async with cur.copy(COPY_PERSONAL) as copy:
                        for row in personal:
                            await copy.write_row(row)
                await cur.execute(SHARE_PERIODS, (PERIOD_LOCKS, period_locks))
                await cur.execute(LOCK_VISITOR_DAYS, (VISITOR_DAY_LOCKS, visitor_locks))
                latest = await _latest_before(cur, visitor_keys)
                await cur.execute(MOVE_STAGED)
                stored = aggregates.stored_now(events, [row[0] for row in await cur.fetchall()])
                cells = aggregates.Cells()
                cells.add_events(stored)
                aggregates.add_visitor_moves(cells, stored, latest)
                aggregates.add_new_visitor_days(cells, stored, latest)
                if rows := cells.rows():
                    await cur.execute(ADD_CELLS, [list(column) for column in zip(*rows, strict=True)])
                await cur.execute(UPSERT_HEADS, head_params)

        await self._write("append", run)

    async def erase(self, consent_id: str) -> int:
        now_ms = int(time.time() * 1000)

        async def run(conn: Conn) -> int:
            async with conn.transaction():
                # Remembered first, so events of this consent id still in a spool are erased on arrival.
                await conn.execute(
                    "INSERT INTO erasures (consent_id, erased_at_ms) VALUES (%s, %s) ON CONFLICT (consent_id)"
                    " DO UPDATE SET erased_at_ms = greatest(erasures.erased_at_ms, excluded.erased_at_ms)",
                    (consent_id, now_ms),
                )
                cur = await conn.execute(
                    "WITH erased AS (UPDATE events SET erased_at_ms = %s WHERE consent_id = %s AND erased_at_ms IS NULL"
                    " RETURNING event_id, timestamp_ms),"
                    " gone AS (DELETE FROM event_personal AS p USING erased"
                    " WHERE p.event_id = erased.event_id AND p.timestamp_ms = erased.timestamp_ms)"
                    " SELECT count(*) FROM erased",
                    (now_ms, consent_id),
                )
                row = await cur.fetchone()
            return int(row[0]) if row else 0

        return await self._write("erase", run)

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now_ms = int(time.time() * 1000)

        async def run(conn: Conn) -> bool:
            async with conn.transaction():
                await conn.execute("DELETE FROM single_use WHERE expires_ms <= %s", (now_ms,))
                cur = await conn.execute(
                    "INSERT INTO single_use (key, expires_ms) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    (key, now_ms + int(ttl_seconds * 1000)),
                )
            return cur.rowcount == 1

        return await self._write("claim", run)

    async def user_choice(self, user_key: str) -> tuple[str, str] | None:
        async def run(conn: Conn) -> tuple[str, str] | None:
            cur = await conn.execute("SELECT consent_id, value FROM user_choices WHERE user_key = %s", (user_key,))
            row = await cur.fetchone()
            return (str(row[0]), str(row[1])) if row else None

        return await self._use("reader", "user_choice", run)

    async def remember_user_choice(self, user_key: str, consent_id: str, value: str, at_ms: int) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO user_choices (user_key, consent_id, value, updated_ms) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (user_key) DO UPDATE SET consent_id = excluded.consent_id, value = excluded.value,"
                " updated_ms = excluded.updated_ms WHERE excluded.updated_ms >= user_choices.updated_ms",
                (user_key, consent_id, value, at_ms),
            )

        await self._write("remember_user_choice", run)

    async def purge(self, *, events_before_ms: int, ip_before_ms: int) -> PurgeResult:
        now_ms = int(time.time() * 1000)

        async def run(conn: Conn) -> PurgeResult:
            async with conn.transaction():
                # Each chain stays contiguous: only its prefix before its first event still in retention goes
                # (a chain with none goes whole), and an anchor records where it now starts. The first kept
                # event of each chain is found by walking its (instance_id, seq) index from the start.
                await conn.execute(
                    "CREATE TEMP TABLE purge_keep ON COMMIT DROP AS"
                    " SELECT h.instance_id, coalesce((SELECT e.seq FROM events AS e WHERE e.instance_id = h.instance_id"
                    " AND e.timestamp_ms >= %s ORDER BY e.seq LIMIT 1), %s) AS keep"
                    " FROM (SELECT instance_id FROM chain_heads UNION SELECT instance_id FROM chain_anchors) AS h",
                    (events_before_ms, _NO_SEQ),
                )
                cur = await conn.execute(
                    "SELECT k.instance_id, a.seq, a.hash FROM purge_keep AS k CROSS JOIN LATERAL"
                    " (SELECT e.seq, e.hash FROM events AS e WHERE e.instance_id = k.instance_id AND e.seq < k.keep"
                    " AND e.timestamp_ms < %s ORDER BY e.seq DESC LIMIT 1) AS a",
                    (events_before_ms,),
                )
                anchors = [(inst, ChainHead(seq=int(seq), hash=h)) for inst, seq, h in await cur.fetchall()]
                if anchors:
                    await cur.executemany(
                        "INSERT INTO chain_anchors (instance_id, seq, hash, purged_at_ms, mac)"
                        " VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (instance_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
                        " purged_at_ms = excluded.purged_at_ms, mac = excluded.mac",
                        [(inst, a.seq, a.hash, now_ms, self._anchor_mac(inst, a)) for inst, a in anchors],
                    )
                deleted = await self._partitions.drop_whole_months(conn, events_before_ms)
                await conn.execute(CREATE_PURGED)
                # the periods of the visitors whose events go: their latest events before and after the delete
                for statement in CREATE_STAGING:  # again after a reconnect: temp tables live per connection
                    await conn.execute(statement)
                await conn.execute(PURGED_VISITOR_KEYS, (events_before_ms, events_before_ms))
                periods = await (await conn.execute(PURGED_PERIODS)).fetchall()
                period_locks = lock_keys(f"{dim}/{period}" for dim, period in periods)
                await conn.execute(TAKE_PERIODS, (PERIOD_LOCKS, period_locks))
                await conn.execute(LATEST_BEFORE)
                cur = await conn.execute(
                    "WITH gone AS (DELETE FROM events AS e USING purge_keep AS k WHERE e.instance_id = k.instance_id"
                    " AND e.seq < k.keep AND e.timestamp_ms < %s RETURNING e.*),"
                    " personal AS (DELETE FROM event_personal AS p USING gone"
                    " WHERE p.event_id = gone.event_id AND p.timestamp_ms = gone.timestamp_ms),"
                    " kept AS (INSERT INTO purged SELECT timestamp_ms, consent_id, country, browser_family,"
                    " device_type, policy_version, categories, vendors FROM gone)"
                    " SELECT count(*) FROM gone",
                    (events_before_ms,),
                )
                row = await cur.fetchone()
                if row and row[0]:
                    deleted += int(row[0])
                    await conn.execute(LATEST_AFTER)
                    await conn.execute(VISITOR_CHANGES)
                    for statement in SUBTRACT_CELLS:
                        await conn.execute(statement)
                cur = await conn.execute(
                    "UPDATE event_personal SET ip = NULL, salts = salts - 'ip'"
                    " WHERE timestamp_ms < %s AND ip IS NOT NULL",
                    (ip_before_ms,),
                )
                ips = cur.rowcount
            return PurgeResult(events_deleted=deleted, ips_removed=ips)

        return await self._write("purge", run)

    def _anchor_mac(self, instance_id: str, head: ChainHead) -> str:
        return self.log_keys.mac(anchor_text(instance_id, head)) if self.log_keys is not None else ""

    # -- reading ----------------------------------------------------------------------------------------

    async def _fetch(self, operation: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def run(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        return await self._read(operation, run)

    async def get(self, event_id: str) -> ConsentEvent | None:
        rows = await self._fetch("get", f"{SELECT} WHERE e.event_id = %s", (event_id,))
        return event_from_values(rows[0]) if rows else None

    async def history(self, consent_id: str) -> list[ConsentEvent]:
        rows = await self._fetch(
            "history", f"{SELECT} WHERE e.consent_id = %s ORDER BY e.timestamp_ms, e.event_id", (consent_id,)
        )
        return [event_from_values(r) for r in rows]

    async def query(self, filters: EventFilter, *, limit: int = 50, cursor: str | None = None) -> EventPage:
        where, params = where_clause(filters)
        if cursor is not None:
            ts, event_id = decode_cursor(cursor)
            where += (" AND " if where else " WHERE ") + "(e.timestamp_ms, e.event_id) < (%s, %s)"
            params += [ts, event_id]
        params.append(limit + 1)
        rows = await self._fetch(
            "query", f"{SELECT}{where} ORDER BY e.timestamp_ms DESC, e.event_id DESC LIMIT %s", params
        )
        events = [event_from_values(r) for r in rows]
        if len(events) > limit:
            last = events[limit - 1]
            return EventPage(events[:limit], encode_cursor(last.timestamp_ms, last.event_id))
        return EventPage(events, None)

    async def count(self, filters: EventFilter) -> int:
        days = aggregates.whole_days(filters)
        if days is not None:
            rows = await self._fetch(
                "count",
                "SELECT coalesce(sum(total), 0) FROM aggregates WHERE dim = %s AND day >= %s AND day < %s",
                (aggregates.EVENTS, *aggregates.day_range(days)),
            )
        elif (cells := aggregates.granted_cells(filters)) is not None:
            rows = await self._fetch("count", *aggregates.read_granted(aggregates.POSTGRES, cells))
        else:
            where, params = where_clause(filters)
            rows = await self._fetch("count", f"SELECT count(*) FROM events AS e{where}", params)
        return int(rows[0][0])

    async def stats(self, filters: EventFilter, *, by: str) -> list[StatRow]:
        if by not in STAT_GROUPS:
            raise ValueError(f"stats by {by!r}: expected one of {', '.join(STAT_GROUPS)}")
        days = aggregates.whole_days(filters)
        if days is not None:
            read = aggregates.read_cells(aggregates.POSTGRES)
            return aggregates.stat_rows(await self._fetch("stats", read, (by, *aggregates.day_range(days))))
        where, params = where_clause(filters)
        if by == "vendor":
            query = (
                f"SELECT c.key, '{VENDOR_CATEGORY}', count(*), count(*) FILTER (WHERE c.value = 'true'::jsonb)"
                f" FROM (SELECT e.vendors FROM events AS e{where}) AS s, jsonb_each(s.vendors) AS c"
                ' GROUP BY 1 ORDER BY c.key COLLATE "C"'
            )
        else:
            query = (
                "SELECT s.g, c.key, count(*), count(*) FILTER (WHERE c.value = 'true'::jsonb)"
                f" FROM (SELECT {GROUP_EXPR[by]} AS g, e.categories FROM events AS e{where}) AS s,"
                ' jsonb_each(s.categories) AS c GROUP BY 1, 2 ORDER BY s.g COLLATE "C", c.key COLLATE "C"'
            )
        return [
            StatRow(group=str(g), category=str(cat), total=int(total), granted=int(granted))
            for g, cat, total, granted in await self._fetch("stats", query, params)
        ]

    async def daily_counts(self, filters: EventFilter) -> list[DayCount]:
        days = aggregates.whole_days(filters)
        if days is not None:
            read = aggregates.read_days(aggregates.POSTGRES)
            return aggregates.day_counts(await self._fetch("daily_counts", read, aggregates.day_range(days)))
        where, params = where_clause(filters)
        query = (
            f"SELECT {GROUP_EXPR['day']} AS d, count(*), count(DISTINCT e.consent_id) FROM events AS e{where}"
            " GROUP BY 1 ORDER BY 1"
        )
        rows = await self._fetch("daily_counts", query, params)
        return [DayCount(str(d), int(n), int(v)) for d, n, v in rows]

    async def visitor_stats(self, filters: EventFilter, *, period: str) -> list[StatRow]:
        days = aggregates.whole_periods(filters, period)
        if days is None:
            return aggregates.visitor_stats_of([e async for e in self.export(filters)], period)
        read = aggregates.read_cells(aggregates.POSTGRES)
        dim = aggregates.PERIOD_DIMS[period]
        return aggregates.stat_rows(await self._fetch("visitor_stats", read, (dim, *aggregates.day_range(days))))

    async def export(self, filters: EventFilter) -> AsyncIterator[ConsentEvent]:
        where, params = where_clause(filters)
        after: tuple[int, str] | None = None
        while True:
            page_where, page_params = where, list(params)
            if after is not None:
                page_where += (" AND " if page_where else " WHERE ") + "(e.timestamp_ms, e.event_id) > (%s, %s)"
                page_params += list(after)
            query = f"{SELECT}{page_where} ORDER BY e.timestamp_ms, e.event_id LIMIT {_EXPORT_PAGE}"
            rows = await self._fetch("export", query, page_params)
            for row in rows:
                yield event_from_values(row)
            if len(rows) < _EXPORT_PAGE:
                return
            last = rows[-1]
            after = (int(last[_TIMESTAMP_INDEX]), str(last[0]))

    # -- integrity --------------------------------------------------------------------------------------

    async def chain_heads(self) -> dict[str, ChainHead]:
        async def run(conn: Conn) -> dict[str, ChainHead]:
            heads = await read_heads(conn, "chain_anchors")
            for inst, head in (await read_heads(conn, "chain_heads")).items():
                if inst not in heads or head.seq > heads[inst].seq:
                    heads[inst] = head
            return heads

        return await self._read("chain_heads", run)

    async def chain_anchors(self) -> dict[str, ChainHead]:
        return await self._read("chain_anchors", lambda conn: read_heads(conn, "chain_anchors"))

    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyResult:
        keys = self.log_keys
        return await self._read("verify", lambda conn: verify_chains(conn, keys, checkpoint))

    async def server_time_ms(self) -> int | None:
        rows = await self._fetch("server_time", f"SELECT {_NOW_MS}")
        return int(rows[0][0])

    async def write_probe(self) -> None:
        async def run(conn: Conn) -> Any:
            cur = await conn.execute("SELECT pg_current_xact_id(), current_setting('transaction_read_only')")
            row = await cur.fetchone()
            if row is None or row[1] == "on":
                return row
            # a page written to a new table of the database's own tablespace, rolled back: a full disk refuses
            # it ("could not extend file") while reads, and appends that still fit an existing page, answer
            async with conn.transaction(force_rollback=True):
                await conn.execute("CREATE TEMPORARY TABLE consent_gateway_write_probe (x integer) ON COMMIT DROP")
                await conn.execute("INSERT INTO consent_gateway_write_probe VALUES (1)")
            return row

        # on the writer's connection: a standby cannot assign a transaction id (the query fails), and a
        # read-only default says so in the second column
        row = await self._write("write probe", run)
        if row is None or row[1] == "on":
            raise StoreUnavailable("postgresql write probe failed: the server only allows read-only transactions")

    async def health(self) -> dict[str, Any]:
        try:
            events = await self.count(EventFilter())  # exact, from the counters
        except StoreUnavailable as exc:
            return {"backend": "postgresql", "ok": False, "error": str(exc)}
        return {
            "backend": "postgresql",
            "ok": True,
            "events": events,
            "url": _redacted(self.url),
            "durable": True,
        }

    # -- coordination between instances (store/coordination.py): times on the server's clock -------------

    async def lease(self, name: str, holder: str, ttl_ms: int, *, take_from: str | None = None) -> str:
        async def run(conn: Conn) -> str:
            async with conn.transaction():
                cur = await conn.execute(
                    f"INSERT INTO coordination (name, value, expires_at_ms) VALUES (%s, %s, {_NOW_MS} + %s)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms"
                    f" WHERE coordination.expires_at_ms <= {_NOW_MS} OR coordination.value = excluded.value"
                    " OR coordination.value = %s RETURNING value",
                    (name, holder, ttl_ms, take_from),
                )
                if await cur.fetchone() is not None:
                    return holder
                cur = await conn.execute("SELECT value FROM coordination WHERE name = %s", (name,))
                row = await cur.fetchone()
            return str(row[0]) if row else ""

        return await self._write("lease", run)

    async def release_lease(self, name: str, holder: str) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute("DELETE FROM coordination WHERE name = %s AND value = %s", (name, holder))

        await self._write("release_lease", run)

    async def state_get(self, names: Sequence[str]) -> dict[str, str]:
        wanted = list(names)
        if not wanted:
            return {}
        rows = await self._fetch(
            "state_get",
            f"SELECT name, value FROM coordination WHERE name = ANY(%s) AND expires_at_ms > {_NOW_MS}",
            (wanted,),
        )
        return {str(n): str(v) for n, v in rows}

    async def archive_banner(self, version: str, document: str) -> bool:
        async def run(conn: Conn) -> bool:
            cursor = await conn.execute(
                f"INSERT INTO banner_versions (version, document, archived_at_ms) VALUES (%s, %s, {_NOW_MS})"
                " ON CONFLICT (version) DO NOTHING",
                (version, document),
            )
            return cursor.rowcount == 1

        return await self._write("archive_banner", run)

    async def banner_versions(self, versions: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(versions))
        if not wanted:
            return {}
        rows = await self._fetch(
            "banner_versions", "SELECT version, document FROM banner_versions WHERE version = ANY(%s)", (wanted,)
        )
        return {str(v): str(d) for v, d in rows}

    async def state_put(self, name: str, value: str, ttl_ms: int) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(f"DELETE FROM coordination WHERE expires_at_ms <= {_NOW_MS}")  # indexed: cheap
            await conn.execute(
                f"INSERT INTO coordination (name, value, expires_at_ms) VALUES (%s, %s, {_NOW_MS} + %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
                (name, value, ttl_ms),
            )

        await self._write("state_put", run)

    async def state_delete(self, names: Sequence[str]) -> None:
        wanted = list(names)
        if not wanted:
            return

        async def run(conn: Conn) -> None:
            await conn.execute("DELETE FROM coordination WHERE name = ANY(%s)", (wanted,))

        await self._write("state_delete", run)

    async def state_incr(self, name: str, ttl_ms: int) -> int:
        async def run(conn: Conn) -> int:
            cur = await conn.execute(
                f"INSERT INTO coordination (name, value, expires_at_ms) VALUES (%s, '1', {_NOW_MS} + %s)"
                " ON CONFLICT (name) DO UPDATE SET"
                f" value = CASE WHEN coordination.expires_at_ms <= {_NOW_MS} THEN '1'"
                " ELSE (coordination.value::bigint + 1)::text END,"
                f" expires_at_ms = CASE WHEN coordination.expires_at_ms <= {_NOW_MS}"
                " THEN excluded.expires_at_ms ELSE coordination.expires_at_ms END RETURNING value",
                (name, ttl_ms),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 1

        return await self._write("state_incr", run)

    # -- the inventory (inventory/records.py, store/inventory_sql.py) -------------------------------------

    async def merge_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        batch = merge_all(entries)
        if not batch:
            return
        columns = inventory_sql.postgres_columns(batch)

        async def run(conn: Conn) -> None:
            await conn.execute(inventory_sql.POSTGRES_MERGE, columns)

        await self._write("merge_inventory", run)

    async def read_inventory(self, query: InventoryQuery) -> InventoryPage:
        page_sql, page_params, count_sql, count_params = inventory_sql.read_statements(query, "%s")

        async def run(conn: Conn) -> InventoryPage:
            rows = await (await conn.execute(page_sql, page_params)).fetchall()
            counted = await (await conn.execute(count_sql, count_params)).fetchone()
            total = int(counted[0]) if counted else 0
            return InventoryPage([inventory_sql.entry_from_row(row) for row in rows], total)

        return await self._read("read_inventory", run)

    async def inventory_size(self) -> InventorySize:
        async def run(conn: Conn) -> InventorySize:
            rows = await (await conn.execute(inventory_sql.SIZE_SQL)).fetchall()
            sql = inventory_sql.UNCLASSIFIED_HOSTS_SQL.format(p="%s")
            counted = await (await conn.execute(sql, (HOST, UNCLASSIFIED))).fetchone()
            return InventorySize({str(k): int(n) for k, n in rows}, int(counted[0]) if counted else 0)

        return await self._read("inventory_size", run)

    async def prune_inventory(self, *, seen_before_ms: int) -> int:
        sql = inventory_sql.PRUNE_SQL.format(p="%s")

        async def run(conn: Conn) -> int:
            removed = 0
            for kind in KINDS:
                cur = await conn.execute(sql, (kind, seen_before_ms))
                removed += max(0, cur.rowcount)
            return removed

        return await self._write("prune_inventory", run)

    # -- shared documents (the classification overlay) -----------------------------------------------------

    async def document_get(self, name: str) -> StoredDocument | None:
        rows = await self._fetch("document_get", "SELECT version, body FROM documents WHERE name = %s", (name,))
        return StoredDocument(int(rows[0][0]), str(rows[0][1])) if rows else None

    async def document_version(self, name: str) -> int:
        rows = await self._fetch("document_version", "SELECT version FROM documents WHERE name = %s", (name,))
        return int(rows[0][0]) if rows else 0

    async def document_put(self, name: str, body: str, *, expected_version: int) -> bool:
        async def run(conn: Conn) -> bool:
            if expected_version == 0:
                cur = await conn.execute(
                    f"INSERT INTO documents (name, version, body, updated_ms) VALUES (%s, 1, %s, {_NOW_MS})"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, body),
                )
            else:
                cur = await conn.execute(
                    f"UPDATE documents SET version = version + 1, body = %s, updated_ms = {_NOW_MS}"
                    " WHERE name = %s AND version = %s",
                    (body, name, expected_version),
                )
            return cur.rowcount == 1

        return await self._write("document_put", run)


#: now on the server's clock, in ms: every instance agrees on when a lease or a session ends
_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
