"""The inventory's SQL on SQLite and PostgreSQL: its table, the commutative merge, and its reads.

One table for every kind (``inventory/records.py`` says what each holds), keyed by ``(kind, key)``. A batch
merges by ``INSERT … ON CONFLICT DO UPDATE``: counts add, first seen is the min and last seen the max,
element kinds OR together, samples keep the smallest distinct paths, and vendor, name and detail come from
the more recent sighting — in one statement, so instances flushing at once never lose a count.
"""

# SQL here is assembled only from constant fragments (column names, the WHERE clauses of ``inventory_where``);
# every value goes through a placeholder.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from consent_gateway.inventory.records import (
    COUNTERS,
    MAX_SAMPLES,
    UNCLASSIFIED,
    InventoryEntry,
    InventoryQuery,
    merged_samples,
)

#: the stored columns, in the order of ``entry_row``
COLUMNS: Final = (
    "kind", "key", "name", "vendor", "detail", "element_kinds", "samples", "count", *COUNTERS,
    "first_seen_ms", "last_seen_ms",
)  # fmt: skip
_ADDED: Final = ("count", *COUNTERS)
_LATEST: Final = ("name", "vendor", "detail")


def _create_table(text: str, integer: str, key: str) -> str:
    return (
        "CREATE TABLE inventory ("
        f" kind {key} NOT NULL, key {key} NOT NULL, name {text} NOT NULL, vendor {text} NOT NULL,"
        f" detail {text} NOT NULL, element_kinds {integer} NOT NULL, samples {text} NOT NULL,"
        + "".join(f" {name} {integer} NOT NULL," for name in _ADDED)
        + f" first_seen_ms {integer} NOT NULL, last_seen_ms {integer} NOT NULL, PRIMARY KEY (kind, key));"
        " CREATE INDEX inventory_recent ON inventory (kind, last_seen_ms);"
        " CREATE INDEX inventory_vendor ON inventory (vendor, kind)"
    )


#: The migrations that add the inventory (one per backend, appended to its MIGRATIONS).
SQLITE_MIGRATION: Final = _create_table("TEXT", "INTEGER", "TEXT")
POSTGRES_MIGRATION: Final = _create_table("text", "bigint", 'text COLLATE "C"').replace(
    "samples text NOT NULL", 'samples text[] COLLATE "C" NOT NULL'
).replace("detail text NOT NULL", "detail jsonb NOT NULL")


def _merge_set(least: str, greatest: str, samples: str) -> str:
    return (
        " ON CONFLICT (kind, key) DO UPDATE SET "
        + ", ".join(f"{name} = inventory.{name} + excluded.{name}" for name in _ADDED)
        + ", "
        + ", ".join(
            f"{name} = CASE WHEN excluded.last_seen_ms >= inventory.last_seen_ms THEN excluded.{name}"
            f" ELSE inventory.{name} END"
            for name in _LATEST
        )
        + ", element_kinds = inventory.element_kinds | excluded.element_kinds"
        + f", samples = {samples}"
        + f", first_seen_ms = {least}(inventory.first_seen_ms, excluded.first_seen_ms)"
        + f", last_seen_ms = {greatest}(inventory.last_seen_ms, excluded.last_seen_ms)"
    )


#: one entry per execution (executemany in one transaction: SQLite runs in process, a statement is cheap)
SQLITE_MERGE: Final = (
    f"INSERT INTO inventory ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    + _merge_set(
        "min",
        "max",
        "(SELECT json_group_array(value) FROM (SELECT value FROM json_each(inventory.samples)"
        f" UNION SELECT value FROM json_each(excluded.samples) ORDER BY value LIMIT {MAX_SAMPLES}))",
    )
)
#: the whole batch in one statement, as arrays (the batch has each key once: ``merge_all``)
_PG_TYPES: Final = {
    "kind": "text", "key": "text", "name": "text", "vendor": "text", "detail": "jsonb", "element_kinds": "int8",
    "samples": "text", **{name: "int8" for name in _ADDED}, "first_seen_ms": "int8", "last_seen_ms": "int8",
}  # fmt: skip
POSTGRES_MERGE: Final = (
    f"INSERT INTO inventory ({', '.join(COLUMNS)}) SELECT "
    + ", ".join(
        "CASE WHEN samples_ = '' THEN '{}'::text[] ELSE string_to_array(samples_, E'\\x1f') END"
        if name == "samples"
        else f"{name}_"
        for name in COLUMNS
    )
    + " FROM unnest("
    + ", ".join(f"%s::{_PG_TYPES[name]}[]" for name in COLUMNS)
    + ") AS batch("
    + ", ".join(f"{name}_" for name in COLUMNS)
    + ")"
    + _merge_set(
        "LEAST",
        "GREATEST",
        'ARRAY(SELECT DISTINCT s COLLATE "C" FROM unnest(inventory.samples || excluded.samples) AS u(s)'
        f" ORDER BY 1 LIMIT {MAX_SAMPLES})",
    )
)


def entry_row(entry: InventoryEntry, *, postgres: bool = False) -> list[Any]:
    """An entry's values in :data:`COLUMNS` order (PostgreSQL: samples joined, unnest cannot nest arrays)."""
    detail = orjson.dumps(entry.detail).decode()
    kept = merged_samples(entry.samples)
    samples: Any = "\x1f".join(kept) if postgres else orjson.dumps(list(kept)).decode()
    return [
        entry.kind, entry.key, entry.name, entry.vendor, detail, entry.element_kinds, samples, entry.count,
        *(getattr(entry, name) for name in COUNTERS), entry.first_seen_ms, entry.last_seen_ms,
    ]  # fmt: skip


def postgres_columns(entries: Sequence[InventoryEntry]) -> list[list[Any]]:
    """The batch as one array per column, for :data:`POSTGRES_MERGE`."""
    rows = [entry_row(e, postgres=True) for e in entries]
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]


def entry_from_row(row: Sequence[Any]) -> InventoryEntry:
    """A row of :data:`SELECT_COLUMNS` (JSON as text on SQLite, decoded already on PostgreSQL)."""
    values = dict(zip(COLUMNS, row, strict=True))
    for name in ("detail", "samples"):
        if isinstance(values[name], str | bytes):
            values[name] = orjson.loads(values[name])
    return InventoryEntry.from_stored(values.pop("kind"), values.pop("key"), values)


SELECT_COLUMNS: Final = ", ".join(COLUMNS)


def inventory_where(query: InventoryQuery, placeholder: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.kind is not None:
        clauses.append(f"kind = {placeholder}")
        params.append(query.kind)
    if query.vendor is not None:
        clauses.append(f"vendor = {placeholder}")
        params.append(query.vendor)
    if query.unclassified_only:
        clauses.append(f"vendor IN ({placeholder}, '')")
        params.append(UNCLASSIFIED)
    if query.seen_since_ms is not None:
        clauses.append(f"last_seen_ms >= {placeholder}")
        params.append(query.seen_since_ms)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def read_statements(query: InventoryQuery, placeholder: str) -> tuple[str, list[Any], str, list[Any]]:
    """(page SQL, its parameters, count SQL, its parameters)."""
    where, params = inventory_where(query, placeholder)
    page = (
        f"SELECT {SELECT_COLUMNS} FROM inventory{where} ORDER BY last_seen_ms DESC, kind, key"
        f" LIMIT {placeholder} OFFSET {placeholder}"
    )
    return page, [*params, query.limit, query.offset], f"SELECT count(*) FROM inventory{where}", params


#: retention: one kind's entries last seen before a time (parameters: kind, ms; the recency index serves it)
PRUNE_SQL: Final = "DELETE FROM inventory WHERE kind = {p} AND last_seen_ms < {p}"
#: entries per kind, and hosts nobody classified (parameters: "host", UNCLASSIFIED)
SIZE_SQL: Final = "SELECT kind, count(*) FROM inventory GROUP BY kind"
UNCLASSIFIED_HOSTS_SQL: Final = "SELECT count(*) FROM inventory WHERE kind = {p} AND vendor = {p}"
