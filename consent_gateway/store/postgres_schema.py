"""The SQL side of the PostgreSQL backend: versioned migrations, monthly partitions, events as rows.

Two tables hold an event, both partitioned by month on ``timestamp_ms`` (declarative partitioning, so a
retention purge drops whole months instead of deleting rows one by one):

- ``events``: the chained record (every hashed field, the commitments, ``erased_at_ms``);
- ``event_personal``: the personal fields (IP, user agent, page, referrer) and their salts.

Erasure deletes an event's ``event_personal`` row; the record and its commitments stay, so the chain
still verifies. `postgres.py` runs these statements; nothing here touches a connection.
"""

# SQL here is assembled only from constant fragments (column names, partition names made of digits, the
# WHERE clauses of ``where_clause``); every value goes through a ``%s`` placeholder.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import operator
import zlib
from collections.abc import Iterable
from typing import Any

import orjson

from consent_gateway.events import EVENT_FIELDS, PERSONAL_FIELDS, ConsentEvent
from consent_gateway.store import aggregates, inventory_sql
from consent_gateway.store.base import EventFilter

#: Fields kept apart from the chained record, with the salts that commit to them.
PERSONAL_COLUMNS = (*PERSONAL_FIELDS, "salts")
RECORD_COLUMNS = tuple(name for name in EVENT_FIELDS if name not in PERSONAL_COLUMNS)
_JSON_FIELDS = frozenset({"categories", "vendors", "commitments", "salts"})

#: Every field of an event, read back in :data:`EVENT_FIELDS` order (an erased event has no personal row).
SELECT = (
    "SELECT "
    + ", ".join(
        "coalesce(p.salts, '{}'::jsonb)"
        if name == "salts"
        else f"p.{name}"
        if name in PERSONAL_COLUMNS
        else f"e.{name}"
        for name in EVENT_FIELDS
    )
    + " FROM events AS e LEFT JOIN event_personal AS p"
    " ON p.event_id = e.event_id AND p.timestamp_ms = e.timestamp_ms"
)

#: Schema migrations, applied in order; ``schema_version`` records the last one applied. Never edit one
#: that has shipped: add the next.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        event_id text COLLATE "C" NOT NULL,
        consent_id text COLLATE "C" NOT NULL,
        action text NOT NULL,
        categories jsonb NOT NULL,
        vendors jsonb NOT NULL,
        policy_version text NOT NULL,
        banner_version text NOT NULL,
        timestamp_ms bigint NOT NULL,
        browser_family text,
        browser_version text,
        os_family text,
        os_version text,
        device_type text,
        country text,
        is_eu boolean,
        region_rule text,
        gpc boolean NOT NULL,
        instance_id text COLLATE "C" NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        seq bigint NOT NULL,
        commitments jsonb NOT NULL,
        erased_at_ms bigint,
        mac text NOT NULL,
        PRIMARY KEY (event_id, timestamp_ms)
    ) PARTITION BY RANGE (timestamp_ms);
    CREATE TABLE event_personal (
        event_id text COLLATE "C" NOT NULL,
        timestamp_ms bigint NOT NULL,
        page_path text,
        referrer_host text,
        ip text,
        user_agent text,
        salts jsonb NOT NULL,
        PRIMARY KEY (event_id, timestamp_ms)
    ) PARTITION BY RANGE (timestamp_ms);
    CREATE INDEX events_time ON events (timestamp_ms, event_id);
    CREATE INDEX events_consent ON events (consent_id, timestamp_ms);
    CREATE INDEX events_chain ON events (instance_id, seq);
    CREATE INDEX events_action ON events (action, timestamp_ms);
    CREATE INDEX events_country ON events (country, timestamp_ms);
    CREATE INDEX events_browser ON events (browser_family, timestamp_ms);
    CREATE INDEX events_device ON events (device_type, timestamp_ms);
    CREATE INDEX events_policy ON events (policy_version, timestamp_ms);
    CREATE INDEX events_categories ON events USING gin (categories jsonb_path_ops);
    CREATE INDEX event_personal_ip ON event_personal (timestamp_ms) WHERE ip IS NOT NULL;
    CREATE TABLE chain_heads (
        instance_id text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL
    );
    -- Erasures are remembered, so an event that arrives late (replayed from a spool) for a consent id
    -- erased meanwhile is stored erased.
    CREATE TABLE erasures (
        consent_id text COLLATE "C" PRIMARY KEY,
        erased_at_ms bigint NOT NULL
    );
    CREATE TABLE chain_anchors (
        instance_id text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL,
        purged_at_ms bigint NOT NULL,
        mac text NOT NULL
    );
    """,
    # 2: single-use keys with a lifetime (sync tokens of [[consent_domains]]); not consent events.
    """
    CREATE TABLE single_use (
        key text COLLATE "C" PRIMARY KEY,
        expires_ms bigint NOT NULL
    );
    CREATE INDEX single_use_expiry ON single_use (expires_ms);
    """,
    # 3: the latest choice of each logged-in user (by the HMAC of their id), for their other devices.
    """
    CREATE TABLE user_choices (
        user_key text COLLATE "C" PRIMARY KEY,
        consent_id text COLLATE "C" NOT NULL,
        value text NOT NULL,
        updated_ms bigint NOT NULL
    );
    """,
    # 4: coordination between instances (store/coordination.py): leases and the dashboard's shared state,
    # each a named value with an expiry on the server's clock.
    """
    CREATE TABLE coordination (
        name text COLLATE "C" PRIMARY KEY,
        value text NOT NULL,
        expires_at_ms bigint NOT NULL
    );
    CREATE INDEX coordination_expiry ON coordination (expires_at_ms);
    """,
    # 5: counters kept on write (store/aggregates.py), filled from the events already stored.
    aggregates.CREATE_TABLE
    + ";"
    + aggregates.upsert(aggregates.cells_select("events", aggregates.POSTGRES, visitors=True)),
    # 6: the inventory of what the site really uses (inventory/records.py, store/inventory_sql.py).
    inventory_sql.POSTGRES_MIGRATION,
    # 7: documents the privacy team edits and every instance reads (the classification overlay), versioned
    # so an instance polls one integer and a writer can tell when another wrote first.
    """
    CREATE TABLE documents (
        name text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL,
        body text NOT NULL,
        updated_ms bigint NOT NULL
    );
    """,
    # 8: every banner version shown, by its hash (what `banner_version` in each event points to)
    """
    CREATE TABLE banner_versions (
        version text COLLATE "C" PRIMARY KEY,
        document text NOT NULL,
        archived_at_ms bigint NOT NULL
    );
    """,
    # 9: per-visitor counters (each visitor's latest choice per day and month: store/aggregates.py), filled
    # from the events already stored.
    aggregates.visitors_backfill(aggregates.POSTGRES),
)

GROUP_EXPR = {
    "day": "to_char(to_timestamp(timestamp_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "country": "coalesce(country, 'unknown')",
    "browser": "coalesce(browser_family, 'unknown')",
    "device": "coalesce(device_type, 'unknown')",
    "policy_version": "policy_version",
}

UPSERT_HEADS = (
    "INSERT INTO chain_heads (instance_id, seq, hash) SELECT * FROM unnest(%s::text[], %s::int8[], %s::text[])"
    " ON CONFLICT (instance_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
    " WHERE excluded.seq > chain_heads.seq"
)

# Staging tables of one connection: COPY fills them, one INSERT … ON CONFLICT moves the new events on.
CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_events (LIKE events) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS staged_personal (LIKE event_personal) ON COMMIT DELETE ROWS",
    # a purge's (visitor, period) pairs (aggregates.create_visitor_keys)
    aggregates.create_visitor_keys(aggregates.POSTGRES, suffix=" ON COMMIT DELETE ROWS"),
)
COPY_EVENTS = f"COPY staged_events ({', '.join(RECORD_COLUMNS)}) FROM STDIN"
COPY_PERSONAL = f"COPY staged_personal (event_id, timestamp_ms, {', '.join(PERSONAL_COLUMNS)}) FROM STDIN"
#: Idempotent by event id: an event already stored is skipped, and so are its personal fields. An event
#: that happened before its consent id was erased (replayed late from a spool) is stored erased: its
#: record marked, its personal fields and their salts never written (``events.erase_late`` in SQL).
_ERASED_ON_ARRIVAL = "coalesce(s.erased_at_ms, CASE WHEN s.timestamp_ms <= r.erased_at_ms THEN r.erased_at_ms END)"
MOVE_STAGED = (
    "WITH added AS ("
    f" INSERT INTO events ({', '.join(RECORD_COLUMNS)}) SELECT "
    + ", ".join(_ERASED_ON_ARRIVAL if name == "erased_at_ms" else f"s.{name}" for name in RECORD_COLUMNS)
    + " FROM staged_events AS s LEFT JOIN erasures AS r ON r.consent_id = s.consent_id"
    " ON CONFLICT DO NOTHING RETURNING event_id, timestamp_ms, erased_at_ms, consent_id, country, browser_family,"
    " device_type, policy_version, categories, vendors),"
    " personal AS (INSERT INTO event_personal SELECT p.* FROM staged_personal AS p"
    " JOIN added USING (event_id, timestamp_ms) WHERE added.erased_at_ms IS NULL)"
    # The counters of the events it returns are summed by the client (aggregates.Cells.add_events: the same
    # sums in SQL, one jsonb_each pass per dimension, took about as long as the rest of the append), the new
    # visitor-days among them from each day's latest event before it, read after LOCK_VISITOR_DAYS (so those
    # another instance is storing are in), by aggregates.add_new_visitor_days: a visitor-day counts once.
    " SELECT event_id FROM added"
)
#: Add the cells of a batch (one array per column, ``Cells.rows()`` order) to the counters.
ADD_CELLS = (
    "INSERT INTO aggregates (day, dim, value, category, total, granted) SELECT * FROM unnest("
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])"
    " ON CONFLICT (dim, day, value, category) DO UPDATE SET total = aggregates.total + excluded.total,"
    " granted = aggregates.granted + excluded.granted"
)
#: Per-visitor counters (store/aggregates.py). The periods a write touches are locked in one order: shared by
#: appends, exclusive by a purge, so a purge reading a period's latest events before and after its delete sees
#: no append change them in between. Lock keys are computed by the client (``lock_keys``), sorted, and passed
#: as one JSON array (a text[] of thousands of ids costs the client more to send than the locks cost).
PERIOD_LOCKS = 0x63670002
SHARE_PERIODS = (
    "SELECT pg_advisory_xact_lock_shared(%s, k::int4) FROM jsonb_array_elements_text(%s::jsonb) AS k"
)
TAKE_PERIODS = "SELECT pg_advisory_xact_lock(%s, k::int4) FROM jsonb_array_elements_text(%s::jsonb) AS k"
#: Every consent id of the batch, locked until commit in one order (no deadlock): another instance storing
#: events of the same visitor at once waits for this commit, so the statements of its counters (each started
#: after the lock, under READ COMMITTED) see these events: the NOT EXISTS of the visitor-days counts a day
#: once, and the latest event of each of the visitor's days and months it looks up is the one this batch
#: left. The two-key lock space is apart from the one-key locks of migrations and partitions.
VISITOR_DAY_LOCKS = 0x63670001
LOCK_VISITOR_DAYS = "SELECT pg_advisory_xact_lock(%s, k::int4) FROM jsonb_array_elements_text(%s::jsonb) AS k"
#: The latest stored event of each ``[consent id, start ms, end ms]`` of a JSON array: rows (index from 0,
#: timestamp_ms, event_id, categories) for those that have one, each one step down ``events_consent``.
LATEST_OF = (
    "SELECT k.i - 1, l.timestamp_ms, l.event_id, l.categories"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS k(v, i)"
    " CROSS JOIN LATERAL (SELECT e.timestamp_ms, e.event_id, e.categories FROM events AS e"
    ' WHERE e.consent_id = (k.v ->> 0) COLLATE "C" AND e.timestamp_ms >= (k.v ->> 1)::int8'
    " AND e.timestamp_ms < (k.v ->> 2)::int8 ORDER BY e.timestamp_ms DESC, e.event_id DESC LIMIT 1) AS l"
)
#: The periods of a purge's ``visitor_keys`` (their lock keys are made by the client, as an append's).
PURGED_PERIODS = "SELECT DISTINCT dim, period FROM visitor_keys"


def lock_keys(names: Iterable[str]) -> str:
    """Advisory lock keys of ``names``, sorted (every writer takes them in one order), as a JSON array."""
    return orjson.dumps(sorted({zlib.crc32(name.encode()) - 2**31 for name in names})).decode()


LATEST_BEFORE = aggregates.fill_latest("old")
LATEST_AFTER = aggregates.fill_latest("new")
VISITOR_CHANGES = aggregates.visitor_changes(aggregates.POSTGRES)
#: The (visitor, period) pairs of the events a purge is about to delete (``purge_keep`` made; parameter:
#: the purge's bound).
PURGED_VISITOR_KEYS = "INSERT INTO visitor_keys (consent_id, dim, period, label, lo, hi) " + (
    aggregates.visitor_keys_select(
        "(SELECT e.consent_id, e.timestamp_ms FROM events AS e JOIN purge_keep AS k USING (instance_id)"
        " WHERE e.seq < k.keep AND e.timestamp_ms < %s) AS doomed",
        aggregates.POSTGRES,
    )
)
#: A purge's deleted rows (``DELETE … RETURNING`` fills it) and what they take from the counters.
CREATE_PURGED = (
    "CREATE TEMP TABLE purged ON COMMIT DROP AS SELECT timestamp_ms, consent_id, country, browser_family,"
    " device_type, policy_version, categories, vendors FROM events WITH NO DATA"
)
SUBTRACT_CELLS = (
    aggregates.upsert(aggregates.cells_select("purged", aggregates.POSTGRES), sign=-1),
    aggregates.upsert(aggregates.new_visitors_select("purged", aggregates.POSTGRES), sign=-1),
    "DELETE FROM aggregates WHERE total = 0 AND granted = 0",
)

_record_values = operator.attrgetter(*RECORD_COLUMNS)
_personal_values = operator.attrgetter("event_id", "timestamp_ms", *PERSONAL_FIELDS)
_RECORD_JSON = tuple(i for i, name in enumerate(RECORD_COLUMNS) if name in _JSON_FIELDS)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def record_row(event: ConsentEvent) -> list[Any]:
    row = list(_record_values(event))
    for i in _RECORD_JSON:
        row[i] = _json(row[i])
    return row


def personal_row(event: ConsentEvent) -> list[Any] | None:
    """The personal row of an event, or ``None`` when it carries no personal field at all."""
    if not event.salts and all(v is None for v in _personal_values(event)[2:]):
        return None
    return [*_personal_values(event), _json(event.salts)]


def month_start(timestamp_ms: int) -> dt.date:
    day = dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).date()
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_ms(month: dt.date) -> int:
    return int(dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def partition_suffix(month: dt.date) -> str:
    return f"p{month.year:04d}{month.month:02d}"


def month_of_partition(name: str) -> dt.date | None:
    """``events_p202601`` → 2026-01-01; ``None`` for a table that is not one of our monthly partitions."""
    suffix = name.rsplit("_", 1)[-1]
    if len(suffix) != 7 or not suffix.startswith("p") or not suffix[1:].isdigit():
        return None
    return dt.date(int(suffix[1:5]), int(suffix[5:7]), 1)


def create_partitions(month: dt.date) -> list[str]:
    """The month's partition of both tables (names are digits only: safe to format in)."""
    low, high = month_ms(month), month_ms(next_month(month))
    return [
        f"CREATE TABLE IF NOT EXISTS {table}_{partition_suffix(month)} PARTITION OF {table}"
        f" FOR VALUES FROM ({low}) TO ({high})"
        for table in ("events", "event_personal")
    ]


def where_clause(filters: EventFilter) -> tuple[str, list[Any]]:
    """The WHERE of ``filters`` over ``events`` (each filter has an index: see the first migration)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, op, value in filters.sql_conditions():
        clauses.append(f"e.{column} {op} %s")
        params.append(value)
    if filters.category is not None:
        clauses.append("e.categories @> %s::jsonb")
        params.append(_json({filters.category: True}))
    if filters.ip is not None:  # personal fields live apart from the chained record
        clauses.append(
            "EXISTS (SELECT 1 FROM event_personal AS p WHERE p.event_id = e.event_id"
            " AND p.timestamp_ms = e.timestamp_ms AND p.ip = %s)"
        )
        params.append(filters.ip)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
