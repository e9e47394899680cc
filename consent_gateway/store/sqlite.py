"""The embedded consent log: one SQLite file in WAL mode, ``synchronous=FULL``.

Durability is bought with an fsync per commit, so appends come in batches (the recorder groups concurrent
events into one transaction). sqlite3 blocks, so every call runs on one of two dedicated threads — a
writer and a reader — never on the event loop; WAL lets the reader (dashboard, CLI, verify) run while the
writer commits.

Copying the WAL back into the database file (a checkpoint, with its own fsync) is queued on the writer's
thread after a write has answered, instead of running inside the commit as SQLite's automatic checkpoint
does: the caller learns that its events are durable (their WAL frames are synced) a checkpoint earlier, and
the next batch's preparation on the event loop overlaps the checkpoint. It is queued once the writes since
the last one added a few thousand events (or after a few dozen small writes): a page that several batches
touched (the consent-id index's leaves are scattered) is then copied once, and the database file's fsync
is paid once per several commits. Being on the writer's thread, it ends before the next write begins, so
the WAL starts over from its beginning and stays a few batches long. Durability does not depend on it: every
commit has already synced its WAL frames. The automatic checkpoint stays on, at a far larger WAL, as a
backstop.
"""

# SQL here is assembled only from constant fragments (column names, the WHERE clauses of ``where_clause``);
# every value goes through a ``?`` placeholder.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from consent_gateway.errors import ConfigError, StoreUnavailable
from consent_gateway.events import (
    ChainHead,
    ConsentEvent,
    LogKeys,
    anchor_text,
    erase_late,
    erase_personal,
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
    SendAppend,
    StatRow,
    StoredDocument,
    VerifyResult,
    decode_cursor,
    encode_cursor,
)
from consent_gateway.store.sqlite_schema import (
    GROUP_EXPR,
    LATEST_AFTER,
    LATEST_BEFORE,
    LATEST_OF,
    MIGRATIONS,
    PURGED_VISITOR_KEYS,
    SELECT,
    SUBTRACT_CELLS,
    UPDATE_HEAD,
    UPSERT_CELL,
    VISITOR_CHANGES,
    VISITOR_KEYS,
    from_row,
    insert_statements,
    migrate,
    to_row,
    where_clause,
)
from consent_gateway.store.sqlite_verify import verify_chains

__all__ = ["MIGRATIONS", "SQLiteConsentLog", "path_from_url"]

logger = logging.getLogger("consent_gateway.store.sqlite")

T = TypeVar("T")

_EXPORT_PAGE = 1000
#: tries at opening a database another connection is setting up at the same moment
_OPEN_ATTEMPTS = 5
#: WAL pages after which a commit checkpoints by itself: only when the queued checkpoints fail (SQLite's
#: default, 1,000 pages, put a checkpoint inside about every commit of a busy log)
_AUTOCHECKPOINT_BACKSTOP_PAGES = 16_384
#: a checkpoint is queued once the writes since the last one added this many events, or after this many
#: writes of any size (four batches of a thousand events: ~4,500-6,000 WAL pages at 100,000 to a million
#: events; one checkpoint per batch copied the consent index's scattered leaves again each time)
_CHECKPOINT_EVENTS = 4000
_CHECKPOINT_WRITES = 32
#: the writer connection's page cache (KiB; SQLite's default is 2 MiB): an append probes and inserts into
#: the consent-id index at scattered places, which a small cache reads again from the file at every batch
_WRITER_CACHE_KIB = 16_384


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/a.db`` → ``rel/a.db``; ``sqlite:////abs/a.db`` → ``/abs/a.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigError("store.url", f"expected sqlite:///path/to/file.db, got {url!r}")
    return Path(url[len(prefix) :].split("?", 1)[0])


class SQLiteConsentLog:
    """:class:`~consent_gateway.store.ConsentLog` on one SQLite file (the embedded default)."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, log_keys: LogKeys | None = None) -> None:
        self.url = url
        #: verifies event and anchor MACs; purge anchors are written with the first key
        self.log_keys = log_keys
        self.path = path_from_url(url)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        #: a checkpoint is queued on the writer (one is enough: it copies whatever the WAL holds)
        self._checkpoint_queued = False
        #: writes, and events they added, since the last checkpoint was queued (writer thread only)
        self._writes_since_checkpoint = 0
        self._events_since_checkpoint = 0

    # -- plumbing ---------------------------------------------------------------------------------------

    def _connect(self, *, writer: bool = False) -> sqlite3.Connection:
        """This thread's connection (``writer``: the writer thread's, made with a larger page cache)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_BACKSTOP_PAGES}")
            if writer:
                conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
            self._local.conn = conn
        return conn

    def _close_thread_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    async def _run(self, pool: ThreadPoolExecutor | None, operation: str, fn: Callable[[], T]) -> T:
        if pool is None:
            raise StoreUnavailable(f"{self.url}: log not opened")

        def call() -> T:
            try:
                return fn()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"sqlite {operation} failed: {exc}", original_error=exc) from exc

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    async def _write(self, operation: str, fn: Callable[[sqlite3.Connection], T], *, events: int = 0) -> T:
        """Run ``fn`` on the writer's thread (``events``: how many events it adds, for the checkpoints)."""
        pool = self._writer

        def write() -> T:
            result = fn(self._connect(writer=True))
            self._writes_since_checkpoint += 1
            self._events_since_checkpoint += events
            due = (
                self._events_since_checkpoint >= _CHECKPOINT_EVENTS
                or self._writes_since_checkpoint >= _CHECKPOINT_WRITES
            )
            if due and pool is not None and not self._checkpoint_queued:
                self._checkpoint_queued = True
                self._writes_since_checkpoint = self._events_since_checkpoint = 0
                with contextlib.suppress(RuntimeError):  # the pool is closing: closing checkpoints anyway
                    pool.submit(self._checkpoint)
            return result

        return await self._run(pool, operation, write)

    def _checkpoint(self) -> None:
        """Copy what the WAL holds into the database file (on the writer's thread, after a write answered)."""
        self._checkpoint_queued = False
        try:
            # PASSIVE: copies what no reader still needs, never waits for a reader
            self._connect(writer=True).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next write queues another; the backstop bounds the WAL meanwhile
            logger.debug("sqlite checkpoint failed: %s", exc)

    async def _read(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._reader, operation, lambda: fn(self._connect()))

    # -- lifecycle --------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # consent records are personal data: created readable by this user only (-wal and -shm follow)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the folder of {self.path}: {exc}", original_error=exc) from exc
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cg-sqlite-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cg-sqlite-reader")
        try:
            for attempt in range(_OPEN_ATTEMPTS):
                try:
                    await self._write("migrate", migrate)
                    break
                except StoreUnavailable as exc:
                    # another connection switching a new file to WAL, or migrating it, at the same moment:
                    # SQLite answers "locked" at once (no busy wait avoids that deadlock); try again shortly
                    locked = isinstance(exc.original_error, sqlite3.OperationalError) and "locked" in str(exc)
                    if not locked or attempt == _OPEN_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.05 * 2**attempt)
        except BaseException:
            await self.close()  # a later open() starts afresh
            raise

    async def close(self) -> None:
        for pool in (self._writer, self._reader):
            if pool is not None:
                await asyncio.get_running_loop().run_in_executor(pool, self._close_thread_conn)
                pool.shutdown(wait=True)
        self._writer = self._reader = None

    # -- writing ----------------------------------------------------------------------------------------

    async def append(self, events: Sequence[ConsentEvent]) -> None:
        await self.prepare_append(events)()

    def prepare_append(self, events: Sequence[ConsentEvent]) -> SendAppend:
        """The append of ``events`` with its rows built now (``base.SendAppend``)."""
        if not events:
            return _nothing
        # the INSERTs' parameters built here, on the event loop, while the writer still writes the batch before
        inserts = list(insert_statements([to_row(e) for e in events]))
        # what the batch adds to the counters whatever is stored already, counted here on the event loop
        # rather than on the writer's thread, which holds the write lock (used when every event is stored)
        newest = aggregates.newest_of_periods(events)
        visitor_keys = sorted(newest)
        counted = aggregates.Cells()
        counted.add_events(events)
        heads: dict[str, tuple[str, int, str]] = {}
        for e in events:
            if e.instance_id not in heads or e.seq > heads[e.instance_id][1]:
                heads[e.instance_id] = (e.instance_id, e.seq, e.hash)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                erased = _erasures_of(conn, {e.consent_id for e in events})
                statements = inserts
                if erased:
                    statements = list(insert_statements([to_row(erase_late(e, erased)) for e in events]))
                before = conn.execute("SELECT coalesce(max(rowid_), 0) FROM events").fetchone()[0]
                latest = _latest_before(conn, visitor_keys)
                changes = conn.total_changes
                for sql, params in statements:
                    conn.execute(sql, params)
                # only the events stored now count (a replayed batch adds nothing)
                if conn.total_changes - changes == len(events):
                    cells, stored_newest = counted.copy(), newest
                else:
                    stored = _stored_now(conn, events, before)
                    cells, stored_newest = aggregates.Cells(), aggregates.newest_of_periods(stored)
                    cells.add_events(stored)
                aggregates.add_period_changes(cells, stored_newest, latest)
                conn.executemany(UPSERT_CELL, cells.rows())
                conn.executemany(UPDATE_HEAD, heads.values())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        async def send() -> None:
            await self._write("append", run, events=len(events))

        return send

    async def erase(self, consent_id: str) -> int:
        now_ms = int(time.time() * 1000)

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Remembered first, so events of this consent id still in a spool are erased on arrival.
                conn.execute(
                    "INSERT INTO erasures (consent_id, erased_at_ms) VALUES (?, ?) ON CONFLICT (consent_id)"
                    " DO UPDATE SET erased_at_ms = max(erased_at_ms, excluded.erased_at_ms)",
                    (consent_id, now_ms),
                )
                rows = conn.execute(f"{SELECT} WHERE consent_id = ? AND erased_at_ms IS NULL", (consent_id,)).fetchall()
                for row in rows:
                    erased = erase_personal(from_row(row), now_ms=now_ms)
                    conn.execute(
                        "UPDATE events SET ip = NULL, user_agent = NULL, page_path = NULL, referrer_host = NULL,"
                        " salts = ?, erased_at_ms = ? WHERE event_id = ?",
                        (json.dumps(erased.salts), now_ms, erased.event_id),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return len(rows)

        return await self._write("erase", run)

    async def purge(self, *, events_before_ms: int, ip_before_ms: int) -> PurgeResult:
        now_ms = int(time.time() * 1000)

        def run(conn: sqlite3.Connection) -> PurgeResult:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Each chain stays contiguous: only its prefix before its first event still in retention
                # goes (a chain with none goes whole), and an anchor records where it now starts.
                # One pass over the time index, however many chains there are.
                conn.execute(
                    "CREATE TEMP TABLE purge_keep AS SELECT instance_id, min(seq) AS keep FROM events"
                    " WHERE timestamp_ms >= ? GROUP BY instance_id",
                    (events_before_ms,),
                )
                doomed = (
                    "timestamp_ms < ? AND seq < coalesce("
                    "(SELECT keep FROM purge_keep AS k WHERE k.instance_id = events.instance_id), 1 << 62)"
                )
                # SQLite gives the bare column (hash) of the row holding max(seq).
                anchors = conn.execute(
                    f"SELECT instance_id, max(seq), hash FROM events WHERE {doomed} GROUP BY instance_id",
                    (events_before_ms,),
                ).fetchall()
                conn.execute(
                    "CREATE TEMP TABLE purged AS SELECT timestamp_ms, consent_id, country, browser_family,"
                    f" device_type, policy_version, categories, vendors FROM events WHERE {doomed}",
                    (events_before_ms,),
                )
                _start_visitor_keys(conn)
                conn.execute(PURGED_VISITOR_KEYS)
                conn.execute(LATEST_BEFORE)
                deleted = conn.execute(f"DELETE FROM events WHERE {doomed}", (events_before_ms,)).rowcount
                conn.execute(LATEST_AFTER)
                conn.execute(VISITOR_CHANGES)
                for statement in SUBTRACT_CELLS:
                    conn.execute(statement)
                conn.execute("DROP TABLE purged")
                conn.executemany(
                    "INSERT INTO chain_anchors (instance_id, seq, hash, purged_at_ms, mac) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (instance_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,"
                    " purged_at_ms = excluded.purged_at_ms, mac = excluded.mac",
                    [(inst, seq, h, now_ms, self._anchor_mac(inst, ChainHead(seq, h))) for inst, seq, h in anchors],
                )
                conn.execute("DROP TABLE purge_keep")
                cur = conn.execute(
                    "UPDATE events SET ip = NULL, salts = json_remove(salts, '$.ip')"
                    " WHERE timestamp_ms < ? AND ip IS NOT NULL",
                    (ip_before_ms,),
                )
                ips = cur.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return PurgeResult(events_deleted=deleted, ips_removed=ips)

        return await self._write("purge", run)

    def _anchor_mac(self, instance_id: str, head: ChainHead) -> str:
        return self.log_keys.mac(anchor_text(instance_id, head)) if self.log_keys is not None else ""

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, event_id: str) -> ConsentEvent | None:
        def run(conn: sqlite3.Connection) -> ConsentEvent | None:
            row = conn.execute(f"{SELECT} WHERE event_id = ?", (event_id,)).fetchone()
            return from_row(row) if row else None

        return await self._read("get", run)

    async def history(self, consent_id: str) -> list[ConsentEvent]:
        def run(conn: sqlite3.Connection) -> list[ConsentEvent]:
            rows = conn.execute(
                f"{SELECT} WHERE consent_id = ? ORDER BY timestamp_ms, event_id", (consent_id,)
            ).fetchall()
            return [from_row(r) for r in rows]

        return await self._read("history", run)

    async def query(self, filters: EventFilter, *, limit: int = 50, cursor: str | None = None) -> EventPage:
        where, params = where_clause(filters)
        if cursor is not None:
            ts, event_id = decode_cursor(cursor)
            where += (" AND " if where else " WHERE ") + "(timestamp_ms, event_id) < (?, ?)"
            params += [ts, event_id]
        sql = f"{SELECT}{where} ORDER BY timestamp_ms DESC, event_id DESC LIMIT ?"
        params.append(limit + 1)

        def run(conn: sqlite3.Connection) -> EventPage:
            events = [from_row(r) for r in conn.execute(sql, params).fetchall()]
            if len(events) > limit:
                last = events[limit - 1]
                return EventPage(events[:limit], encode_cursor(last.timestamp_ms, last.event_id))
            return EventPage(events, None)

        return await self._read("query", run)

    async def count(self, filters: EventFilter) -> int:
        days = aggregates.whole_days(filters)
        if days is not None:
            sql = "SELECT coalesce(sum(total), 0) FROM aggregates WHERE dim = ? AND day >= ? AND day < ?"
            params: list[Any] = [aggregates.EVENTS, *aggregates.day_range(days)]
        elif (cells := aggregates.granted_cells(filters)) is not None:
            sql, params = aggregates.read_granted(aggregates.SQLITE, cells)
        else:
            where, params = where_clause(filters)
            sql = f"SELECT count(*) FROM events{where}"
        return await self._read("count", lambda c: int(c.execute(sql, params).fetchone()[0]))

    async def stats(self, filters: EventFilter, *, by: str) -> list[StatRow]:
        if by not in STAT_GROUPS:
            raise ValueError(f"stats by {by!r}: expected one of {', '.join(STAT_GROUPS)}")
        days = aggregates.whole_days(filters)
        if days is not None:
            counters = [by, *aggregates.day_range(days)]
            read = aggregates.read_cells(aggregates.SQLITE)
            return await self._read("stats", lambda c: aggregates.stat_rows(c.execute(read, counters)))
        where, params = where_clause(filters)
        if by == "vendor":
            sql = (
                f"SELECT j.key, '{VENDOR_CATEGORY}', count(*), sum(j.value) FROM"
                f" (SELECT vendors FROM events{where}) AS e, json_each(e.vendors) AS j GROUP BY j.key ORDER BY j.key"
            )
        else:
            sql = (
                f"SELECT g, j.key, count(*), sum(j.value) FROM"
                f" (SELECT {GROUP_EXPR[by]} AS g, categories FROM events{where}) AS e, json_each(e.categories) AS j"
                " GROUP BY g, j.key ORDER BY g, j.key"
            )

        def run(conn: sqlite3.Connection) -> list[StatRow]:
            return [
                StatRow(group=str(g), category=str(cat), total=int(total), granted=int(granted or 0))
                for g, cat, total, granted in conn.execute(sql, params)
            ]

        return await self._read("stats", run)

    async def daily_counts(self, filters: EventFilter) -> list[DayCount]:
        days = aggregates.whole_days(filters)
        if days is not None:
            read, counters = aggregates.read_days(aggregates.SQLITE), aggregates.day_range(days)
            return await self._read("daily_counts", lambda c: aggregates.day_counts(c.execute(read, counters)))
        where, params = where_clause(filters)
        sql = (
            f"SELECT {GROUP_EXPR['day']} AS d, count(*), count(DISTINCT consent_id) FROM events{where}"
            " GROUP BY d ORDER BY d"
        )

        def run(conn: sqlite3.Connection) -> list[DayCount]:
            return [DayCount(str(d), int(n), int(v)) for d, n, v in conn.execute(sql, params)]

        return await self._read("daily_counts", run)

    async def visitor_stats(self, filters: EventFilter, *, period: str) -> list[StatRow]:
        days = aggregates.whole_periods(filters, period)
        if days is None:
            return aggregates.visitor_stats_of([e async for e in self.export(filters)], period)
        counters = [aggregates.PERIOD_DIMS[period], *aggregates.day_range(days)]
        read = aggregates.read_cells(aggregates.SQLITE)
        return await self._read("visitor_stats", lambda c: aggregates.stat_rows(c.execute(read, counters)))

    async def export(self, filters: EventFilter) -> AsyncIterator[ConsentEvent]:
        where, params = where_clause(filters)
        after: tuple[int, str] | None = None
        while True:
            page_where = where
            page_params = list(params)
            if after is not None:
                page_where += (" AND " if page_where else " WHERE ") + "(timestamp_ms, event_id) > (?, ?)"
                page_params += list(after)
            sql = f"{SELECT}{page_where} ORDER BY timestamp_ms, event_id LIMIT {_EXPORT_PAGE}"
            rows = await self._read("export", functools.partial(_fetch_all, sql=sql, params=page_params))
            for row in rows:
                yield from_row(row)
            if len(rows) < _EXPORT_PAGE:
                return
            last = from_row(rows[-1])
            after = (last.timestamp_ms, last.event_id)

    # -- integrity --------------------------------------------------------------------------------------

    async def chain_heads(self) -> dict[str, ChainHead]:
        def run(conn: sqlite3.Connection) -> dict[str, ChainHead]:
            heads = {
                inst: ChainHead(seq=seq, hash=h)
                for inst, seq, h in conn.execute("SELECT instance_id, seq, hash FROM chain_anchors")
            }
            for inst, seq, h in conn.execute("SELECT instance_id, seq, hash FROM chain_heads"):
                if inst not in heads or seq > heads[inst].seq:
                    heads[inst] = ChainHead(seq=seq, hash=h)
            return heads

        return await self._read("chain_heads", run)

    async def chain_anchors(self) -> dict[str, ChainHead]:
        def run(conn: sqlite3.Connection) -> dict[str, ChainHead]:
            rows = conn.execute("SELECT instance_id, seq, hash FROM chain_anchors")
            return {inst: ChainHead(seq=seq, hash=h) for inst, seq, h in rows}

        return await self._read("chain_anchors", run)

    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyResult:
        keys = self.log_keys
        return await self._read("verify", lambda conn: verify_chains(conn, keys, checkpoint))

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now_ms = int(time.time() * 1000)

        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM single_use WHERE expires_ms <= ?", (now_ms,))
                cur = conn.execute(
                    "INSERT OR IGNORE INTO single_use (key, expires_ms) VALUES (?, ?)",
                    (key, now_ms + int(ttl_seconds * 1000)),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return cur.rowcount == 1

        return await self._write("claim", run)

    async def user_choice(self, user_key: str) -> tuple[str, str] | None:
        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute("SELECT consent_id, value FROM user_choices WHERE user_key = ?", (user_key,)).fetchone()
            return (str(row[0]), str(row[1])) if row else None

        return await self._read("user_choice", run)

    async def remember_user_choice(self, user_key: str, consent_id: str, value: str, at_ms: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO user_choices (user_key, consent_id, value, updated_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_key) DO UPDATE SET consent_id = excluded.consent_id, value = excluded.value,"
                " updated_ms = excluded.updated_ms WHERE excluded.updated_ms >= user_choices.updated_ms",
                (user_key, consent_id, value, at_ms),
            )

        await self._write("remember_user_choice", run)

    async def server_time_ms(self) -> int | None:
        return None  # one file on this host: this host's clock is the only one

    async def write_probe(self) -> None:
        def take_write_lock(conn: sqlite3.Connection) -> None:
            # what every append needs first: fails (after the busy timeout) while another process holds the
            # file's write lock, or when the file or its folder is read-only
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")

        await self._write("write probe", take_write_lock)

    async def health(self) -> dict[str, Any]:
        try:
            events = await self.count(EventFilter())
        except StoreUnavailable as exc:
            return {"backend": "sqlite", "ok": False, "error": str(exc)}
        return {"backend": "sqlite", "ok": True, "events": events, "path": str(self.path), "durable": True}

    # -- coordination between instances (store/coordination.py) ------------------------------------------
    # One file means one host: this host's clock is every instance's clock.

    async def lease(self, name: str, holder: str, ttl_ms: int, *, take_from: str | None = None) -> str:
        def run(conn: sqlite3.Connection) -> str:
            now = _now_ms()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value, expires_at_ms FROM coordination WHERE name = ?", (name,)).fetchone()
                if row is not None and row[1] > now and row[0] not in (holder, take_from):
                    conn.execute("COMMIT")
                    return str(row[0])
                conn.execute(_PUT_STATE, (name, holder, now + ttl_ms))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return holder

        return await self._write("lease", run)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(
            "release_lease",
            lambda c: c.execute("DELETE FROM coordination WHERE name = ? AND value = ?", (name, holder)),
        )

    async def state_get(self, names: Sequence[str]) -> dict[str, str]:
        wanted = list(names)

        def run(conn: sqlite3.Connection) -> dict[str, str]:
            now = _now_ms()
            found: dict[str, str] = {}
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                sql = (
                    f"SELECT name, value FROM coordination WHERE name IN ({','.join('?' * len(chunk))})"
                    " AND expires_at_ms > ?"
                )
                found.update(conn.execute(sql, [*chunk, now]).fetchall())
            return found

        return await self._read("state_get", run) if wanted else {}

    async def state_put(self, name: str, value: str, ttl_ms: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = _now_ms()
            conn.execute("DELETE FROM coordination WHERE expires_at_ms <= ?", (now,))  # indexed: cheap
            conn.execute(_PUT_STATE, (name, value, now + ttl_ms))

        await self._write("state_put", run)

    async def state_delete(self, names: Sequence[str]) -> None:
        wanted = list(names)
        if wanted:
            sql = f"DELETE FROM coordination WHERE name IN ({','.join('?' * len(wanted))})"
            await self._write("state_delete", lambda c: c.execute(sql, wanted))

    async def state_incr(self, name: str, ttl_ms: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            now = _now_ms()
            row = conn.execute(
                "INSERT INTO coordination (name, value, expires_at_ms) VALUES (?, '1', ?) ON CONFLICT (name) DO UPDATE"
                " SET value = CASE WHEN expires_at_ms <= ? THEN '1' ELSE CAST(CAST(value AS INTEGER) + 1 AS TEXT) END,"
                " expires_at_ms = CASE WHEN expires_at_ms <= ? THEN excluded.expires_at_ms ELSE expires_at_ms END"
                " RETURNING value",
                (name, now + ttl_ms, now, now),
            ).fetchone()
            return int(row[0])

        return await self._write("state_incr", run)

    # -- the inventory (inventory/records.py, store/inventory_sql.py) -------------------------------------

    async def merge_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        rows = [inventory_sql.entry_row(e) for e in merge_all(entries)]
        if not rows:
            return

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(inventory_sql.SQLITE_MERGE, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._write("merge_inventory", run)

    async def read_inventory(self, query: InventoryQuery) -> InventoryPage:
        page_sql, page_params, count_sql, count_params = inventory_sql.read_statements(query, "?")

        def run(conn: sqlite3.Connection) -> InventoryPage:
            rows = conn.execute(page_sql, page_params).fetchall()
            total = int(conn.execute(count_sql, count_params).fetchone()[0])
            return InventoryPage([inventory_sql.entry_from_row(row) for row in rows], total)

        return await self._read("read_inventory", run)

    async def inventory_size(self) -> InventorySize:
        def run(conn: sqlite3.Connection) -> InventorySize:
            by_kind = {str(k): int(n) for k, n in conn.execute(inventory_sql.SIZE_SQL).fetchall()}
            sql = inventory_sql.UNCLASSIFIED_HOSTS_SQL.format(p="?")
            unclassified = int(conn.execute(sql, (HOST, UNCLASSIFIED)).fetchone()[0])
            return InventorySize(by_kind, unclassified)

        return await self._read("inventory_size", run)

    async def prune_inventory(self, *, seen_before_ms: int) -> int:
        sql = inventory_sql.PRUNE_SQL.format(p="?")

        def run(conn: sqlite3.Connection) -> int:
            return sum(conn.execute(sql, (kind, seen_before_ms)).rowcount for kind in KINDS)

        return await self._write("prune_inventory", run)

    # -- shared documents (the classification overlay) -----------------------------------------------------

    async def document_get(self, name: str) -> StoredDocument | None:
        def run(conn: sqlite3.Connection) -> StoredDocument | None:
            row = conn.execute("SELECT version, body FROM documents WHERE name = ?", (name,)).fetchone()
            return StoredDocument(int(row[0]), str(row[1])) if row else None

        return await self._read("document_get", run)

    async def document_version(self, name: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT version FROM documents WHERE name = ?", (name,)).fetchone()
            return int(row[0]) if row else 0

        return await self._read("document_version", run)

    async def document_put(self, name: str, body: str, *, expected_version: int) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            if expected_version == 0:
                cursor = conn.execute(
                    "INSERT INTO documents (name, version, body, updated_ms) VALUES (?, 1, ?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, body, _now_ms()),
                )
            else:
                cursor = conn.execute(
                    "UPDATE documents SET version = version + 1, body = ?, updated_ms = ?"
                    " WHERE name = ? AND version = ?",
                    (body, _now_ms(), name, expected_version),
                )
            return cursor.rowcount == 1

        return await self._write("document_put", run)

    async def archive_banner(self, version: str, document: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO banner_versions (version, document, archived_at_ms) VALUES (?, ?, ?)",
                (version, document, _now_ms()),
            )
            return cursor.rowcount == 1

        return await self._write("archive_banner", run)

    async def banner_versions(self, versions: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(versions))

        def run(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                sql = f"SELECT version, document FROM banner_versions WHERE version IN ({','.join('?' * len(chunk))})"
                found.update(conn.execute(sql, chunk).fetchall())
            return found

        return await self._read("banner_versions", run) if wanted else {}


_PUT_STATE = (
    "INSERT INTO coordination (name, value, expires_at_ms) VALUES (?, ?, ?) ON CONFLICT (name)"
    " DO UPDATE SET value = excluded.value, expires_at_ms = excluded.expires_at_ms"
)


async def _nothing() -> None:
    """The append of no events."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _latest_before(
    conn: sqlite3.Connection, keys: Sequence[aggregates.VisitorKey]
) -> dict[aggregates.VisitorKey, aggregates.Latest | None]:
    """Each (visitor, period)'s latest stored event: one indexed lookup per (visitor, month), and per day only
    where the month's latest does not settle it (``aggregates.settle_days``); each round in one statement."""

    def look_up(wanted: list[aggregates.VisitorKey]) -> dict[aggregates.VisitorKey, aggregates.Latest | None]:
        found: dict[aggregates.VisitorKey, aggregates.Latest | None] = dict.fromkeys(wanted)
        if wanted:
            periods = orjson.dumps([[key[0], key[4], key[5]] for key in wanted])
            for i, timestamp_ms, event_id, categories in conn.execute(LATEST_OF, (periods,)):
                found[wanted[i]] = (int(timestamp_ms), str(event_id), orjson.loads(categories))
        return found

    found, left = aggregates.settle_days(keys, look_up([k for k in keys if k[1] == aggregates.VISITOR_MONTH]))
    found.update(look_up(left))
    return found


def _start_visitor_keys(conn: sqlite3.Connection) -> None:
    """An empty ``visitor_keys`` (a temporary table: one per connection, made on first use)."""
    conn.execute(VISITOR_KEYS)
    conn.execute("DELETE FROM visitor_keys")


def _erasures_of(conn: sqlite3.Connection, consent_ids: set[str]) -> dict[str, int]:
    """Consent id → when it was erased, for the ids of one batch that were."""
    found: dict[str, int] = {}
    ids = list(consent_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        sql = f"SELECT consent_id, erased_at_ms FROM erasures WHERE consent_id IN ({','.join('?' * len(chunk))})"
        found.update(conn.execute(sql, chunk).fetchall())
    return found


def _stored_now(conn: sqlite3.Connection, events: Sequence[ConsentEvent], before: int) -> list[ConsentEvent]:
    """Those of ``events`` the last insert stored (rows above ``before``)."""
    new_ids = [row[0] for row in conn.execute("SELECT event_id FROM events WHERE rowid_ > ?", (before,))]
    return aggregates.stored_now(events, new_ids)


def _fetch_all(conn: sqlite3.Connection, *, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()
