"""The SQL side of the SQLite backend: the schema and its migrations, events as rows, filters as WHERE.

`sqlite.py` runs these on its writer and reader threads; nothing here touches a thread or the event loop.
"""

# SQL here is assembled only from constant fragments (column names, the WHERE clauses of ``where_clause``);
# every value goes through a ``?`` placeholder.
# ruff: noqa: S608

from __future__ import annotations

import functools
import itertools
import logging
import operator
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import EVENT_FIELDS, ConsentEvent, event_from_values
from consent_gateway.store import aggregates, inventory_sql
from consent_gateway.store.base import EventFilter

logger = logging.getLogger("consent_gateway.store.sqlite")

_JSON_FIELDS = frozenset({"categories", "vendors", "commitments", "salts"})
_BOOL_FIELDS = frozenset({"is_eu", "gpc"})
_COLUMNS = ", ".join(EVENT_FIELDS)
_ROW_PLACEHOLDERS = "(" + ", ".join("?" * len(EVENT_FIELDS)) + ")"
#: Add one cell ``(day, dim, value, category, total, granted)`` to the counters.
UPSERT_CELL = (
    "INSERT INTO aggregates (day, dim, value, category, total, granted) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (dim, day, value, category) DO UPDATE SET total = aggregates.total + excluded.total,"
    " granted = aggregates.granted + excluded.granted"
)
#: Rows per INSERT statement: one statement binds many rows, so the writer thread takes the GIL back
#: far less often than with executemany (one step per row) while the event loop is busy.
_ROWS_PER_INSERT = 256
UPDATE_HEAD = (
    "INSERT INTO chain_heads (instance_id, seq, hash) VALUES (?, ?, ?) ON CONFLICT (instance_id)"
    " DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > chain_heads.seq"
)
SELECT = f"SELECT {_COLUMNS} FROM events"
_decode_json = orjson.loads


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


#: Schema migrations, applied in order; ``schema_version`` records the last one applied. Never edit one
#: that has shipped: add the next.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        rowid_ INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        consent_id TEXT NOT NULL,
        action TEXT NOT NULL,
        categories TEXT NOT NULL,
        vendors TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        banner_version TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        page_path TEXT,
        referrer_host TEXT,
        ip TEXT,
        user_agent TEXT,
        browser_family TEXT,
        browser_version TEXT,
        os_family TEXT,
        os_version TEXT,
        device_type TEXT,
        country TEXT,
        is_eu INTEGER,
        region_rule TEXT,
        gpc INTEGER NOT NULL,
        instance_id TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        seq INTEGER NOT NULL,
        commitments TEXT NOT NULL,
        salts TEXT NOT NULL,
        erased_at_ms INTEGER
    );
    CREATE INDEX events_time ON events (timestamp_ms, event_id);
    CREATE INDEX events_consent ON events (consent_id, timestamp_ms);
    CREATE TABLE chain_heads (
        instance_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE chain_anchors (
        instance_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        purged_at_ms INTEGER NOT NULL
    );
    """,
    # 2: indexes for the dashboard's selective filters, newest first. Action and device type have a handful
    # of values each: the time index serves them better than an index would, and every index costs appends.
    """
    CREATE INDEX events_country ON events (country, timestamp_ms);
    CREATE INDEX events_policy ON events (policy_version, timestamp_ms);
    CREATE INDEX events_browser ON events (browser_family, timestamp_ms);
    """,
    # 3: erasures are remembered, so an event that arrives late (replayed from a spool) for a consent id
    # erased meanwhile is stored erased.
    """
    CREATE TABLE erasures (
        consent_id TEXT PRIMARY KEY,
        erased_at_ms INTEGER NOT NULL
    );
    """,
    # 4: the keyed chain: each event's and each anchor's MAC under the log key.
    """
    ALTER TABLE events ADD COLUMN mac TEXT NOT NULL DEFAULT '';
    ALTER TABLE chain_anchors ADD COLUMN mac TEXT NOT NULL DEFAULT '';
    """,
    # 5: single-use keys with a lifetime (sync tokens of [[consent_domains]]); not consent events.
    """
    CREATE TABLE single_use (
        key TEXT PRIMARY KEY,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX single_use_expiry ON single_use (expires_ms);
    """,
    # 6: the latest choice of each logged-in user (by the HMAC of their id), for their other devices.
    """
    CREATE TABLE user_choices (
        user_key TEXT PRIMARY KEY,
        consent_id TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    """,
    # 7: coordination between instances (store/coordination.py): leases and the dashboard's shared state,
    # each a named value with an expiry.
    """
    CREATE TABLE coordination (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );
    CREATE INDEX coordination_expiry ON coordination (expires_at_ms);
    """,
    # 8: counters kept on write (store/aggregates.py), filled from the events already stored.
    aggregates.CREATE_TABLE
    + ";"
    + aggregates.upsert(aggregates.cells_select("events", aggregates.SQLITE, visitors=True)),
    # 9: the inventory of what the site really uses (inventory/records.py, store/inventory_sql.py).
    inventory_sql.SQLITE_MIGRATION,
    # 10: documents the privacy team edits and every instance reads (the classification overlay), versioned
    # so an instance polls one integer and a writer can tell when another wrote first.
    """
    CREATE TABLE documents (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    """,
    # 11: every banner version shown, by its hash (what `banner_version` in each event points to)
    """
    CREATE TABLE banner_versions (
        version TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        archived_at_ms INTEGER NOT NULL
    );
    """,
    # 12: a visitor's events ordered as the per-visitor counters read them (latest by time, then event id):
    # the latest of a period is then one step down the index, with no sort.
    """
    DROP INDEX events_consent;
    CREATE INDEX events_consent ON events (consent_id, timestamp_ms, event_id);
    """,
    # 13: per-visitor counters (each visitor's latest choice per day and month: store/aggregates.py), filled
    # from the events already stored.
    aggregates.visitors_backfill(aggregates.SQLITE),
)

#: What a purge takes from the counters (``purged``: the deleted events, after the delete).
SUBTRACT_CELLS = (
    aggregates.upsert(aggregates.cells_select("purged", aggregates.SQLITE), sign=-1),
    aggregates.upsert(aggregates.new_visitors_select("purged", aggregates.SQLITE), sign=-1),
    "DELETE FROM aggregates WHERE total = 0 AND granted = 0",
)

#: Per-visitor counters (store/aggregates.py): an append looks up each (visitor, period)'s latest event
#: (``LATEST_OF``); a purge puts the (visitor, period) pairs it touches in ``visitor_keys``, with their latest
#: events before and after it, and the difference goes into the counters.
VISITOR_KEYS = aggregates.create_visitor_keys(aggregates.SQLITE)
#: The latest stored event of each ``[consent id, start ms, end ms]`` of a JSON array (parameter): rows
#: ``(index in the array, timestamp_ms, event_id, categories)`` for those that have one. One statement for a
#: whole batch: each lookup is one step down ``events_consent``, then one row by its rowid.
LATEST_OF = (
    "SELECT k.key, e.timestamp_ms, e.event_id, e.categories FROM json_each(?) AS k JOIN events AS e ON e.rowid_ ="
    " (SELECT rowid_ FROM events WHERE consent_id = json_extract(k.value, '$[0]')"
    " AND timestamp_ms >= json_extract(k.value, '$[1]') AND timestamp_ms < json_extract(k.value, '$[2]')"
    " ORDER BY timestamp_ms DESC, event_id DESC LIMIT 1)"
)
PURGED_VISITOR_KEYS = "INSERT INTO visitor_keys (consent_id, dim, period, label, lo, hi) " + (
    aggregates.visitor_keys_select("purged", aggregates.SQLITE)
)
LATEST_BEFORE = aggregates.fill_latest("old")
LATEST_AFTER = aggregates.fill_latest("new")
VISITOR_CHANGES = aggregates.visitor_changes(aggregates.SQLITE)

GROUP_EXPR = {
    "day": "strftime('%Y-%m-%d', timestamp_ms / 1000, 'unixepoch')",
    "country": "coalesce(country, 'unknown')",
    "browser": "coalesce(browser_family, 'unknown')",
    "device": "coalesce(device_type, 'unknown')",
    "policy_version": "policy_version",
}


_JSON_INDEXES = tuple(i for i, name in enumerate(EVENT_FIELDS) if name in _JSON_FIELDS)
_BOOL_INDEXES = tuple(i for i, name in enumerate(EVENT_FIELDS) if name in _BOOL_FIELDS)
_all_values = operator.attrgetter(*EVENT_FIELDS)


def _compile_to_row() -> Any:
    """``to_row(event)`` as one straight line of code: the JSON columns as orjson's text, the booleans as the
    integers SQLite stores them anyway (sqlite3 binds an exact int directly, while a bool goes through its
    adapter lookup, ~3,000 instructions each, on the writer thread), every other value as it is. Every
    appended event goes through it on the event loop: a loop over the columns cost twice as much."""
    items = []
    for i, name in enumerate(EVENT_FIELDS):
        if name in _JSON_FIELDS:
            items.append(f"_dumps(v[{i}]).decode()")
        elif name in _BOOL_FIELDS:
            items.append(f"(None if v[{i}] is None else 1 if v[{i}] else 0)")
        else:
            items.append(f"v[{i}]")
    source = f"def to_row(event):\n    v = _all_values(event)\n    return [{', '.join(items)}]"
    namespace: dict[str, Any] = {"_all_values": _all_values, "_dumps": orjson.dumps}
    exec(source, namespace)  # noqa: S102 - constant source built from the field names above
    return namespace["to_row"]


_to_row = _compile_to_row()


def to_row(event: ConsentEvent) -> list[Any]:
    """An event as its row's values, in ``EVENT_FIELDS`` order."""
    row: list[Any] = _to_row(event)
    return row


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    return f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES " + ", ".join([_ROW_PLACEHOLDERS] * rows)


def insert_statements(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """Multi-row INSERTs: full chunks, then the remainder split in powers of two (few distinct statements)."""
    i = 0
    while len(rows) - i >= _ROWS_PER_INSERT:
        yield _insert_sql(_ROWS_PER_INSERT), list(itertools.chain.from_iterable(rows[i : i + _ROWS_PER_INSERT]))
        i += _ROWS_PER_INSERT
    size = _ROWS_PER_INSERT // 2
    while i < len(rows):
        if len(rows) - i >= size:
            yield _insert_sql(size), list(itertools.chain.from_iterable(rows[i : i + size]))
            i += size
        size //= 2


def from_row(row: Sequence[Any]) -> ConsentEvent:
    return event_from_values(values_of_row(row))


def values_of_row(row: Sequence[Any]) -> list[Any]:
    """A row's values as an event holds them (JSON decoded, booleans as ``bool``), in ``EVENT_FIELDS`` order."""
    values = list(row)
    for i in _JSON_INDEXES:
        values[i] = _decode_json(values[i])
    for i in _BOOL_INDEXES:
        if values[i] is not None:
            values[i] = bool(values[i])
    return values


def where_clause(filters: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, op, value in filters.sql_conditions():
        clauses.append(f"{column} {op} ?")
        params.append(value)
    if filters.category is not None:
        clauses.append("EXISTS (SELECT 1 FROM json_each(events.categories) WHERE key = ? AND value = 1)")
        params.append(filters.category)
    if filters.ip is not None:
        clauses.append("ip = ?")
        params.append(filters.ip)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks, in one transaction; returns the schema version.

    An up-to-date database is only read: a reader (``logs search`` while the gateway writes) never waits
    for the write lock.
    """
    if _schema_version(conn) == len(MIGRATIONS):
        return len(MIGRATIONS)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > len(MIGRATIONS):
            raise StoreUnavailable(
                f"database schema version {current} is newer than this consent-gateway knows "
                f"({len(MIGRATIONS)}); upgrade consent-gateway"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            for statement in MIGRATIONS[version - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            logger.info("consent log schema migrated to version %d", version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _schema_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:  # no table yet: a new database
        return None
    return int(row[0] or 0)
