"""The scale benchmark's PostgreSQL bulk loader (benchmarks/bulk_postgres.py) writes what the append path
writes: the same chained events appended to one schema and bulk-loaded into another leave equal rows in
every table of the log (records, personal fields, counters, chain heads), and `logs verify` passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from benchmarks.bench_scale import LOG_KEY, LOG_KEYS, Synthetic
from benchmarks.bulk_postgres import BulkLoadRefused, PostgresBulkLoader
from consent_gateway.cli import main
from consent_gateway.events import EventChain
from consent_gateway.store.postgres import PostgresConsentLog
from consent_gateway.store.proof import LOG_KEYS_ENV

pytestmark = pytest.mark.postgres

#: every table a load writes, ordered so that their rows compare
TABLES = {
    "events": "event_id, timestamp_ms",
    "event_personal": "event_id, timestamp_ms",
    "aggregates": "dim, day, value, category",
    "chain_heads": "instance_id",
}


def indexes(url: str, schema: str) -> list[tuple[str, str, str]]:
    """Every index of the schema (the loader drops the secondary ones and makes them again at its end)."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1, 2", (schema,)
        ).fetchall()
    return [(table, name, definition.replace(f"{schema}.", "")) for table, name, definition in found]


def rows(url: str, schema: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            table: conn.execute(f'SELECT * FROM "{schema}".{table} ORDER BY {order}').fetchall()
            for table, order in TABLES.items()
        }


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:12]
    names = (f"cgtest_{tag}_append", f"cgtest_{tag}_copy")
    yield names
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_bulk_loaded_rows_equal_appended_rows_and_the_log_verifies(
    postgres_url: str, schemas: tuple[str, str]
) -> None:
    appended, bulk = (PostgresConsentLog(f"{postgres_url}?schema={s}", log_keys=LOG_KEYS) for s in schemas)
    try:
        for log in (appended, bulk):
            await log.open()
        # the benchmark's own synthetic site: 3,000 events over 70 days (three or four monthly partitions),
        # returning visitors, on two chains
        chains = [EventChain(f"bulk-{i}", keys=LOG_KEYS) for i in range(2)]
        events = [chains[i % 2].append(e) for i, e in enumerate(Synthetic(3000, 70, seed=5))]
        for start in range(0, len(events), 500):
            await appended.append(events[start : start + 500])
        loader = PostgresBulkLoader(bulk)
        for start in range(0, len(events), 1200):
            await loader.add(events[start : start + 1200])
        await loader.finish()

        a, b = rows(postgres_url, schemas[0]), rows(postgres_url, schemas[1])
        assert len(a["events"]) == len(a["event_personal"]) == 3000
        assert {r[0] for r in a["aggregates"]} >= {"events", "visitors", "country", "vendor"}
        for table in TABLES:
            assert b[table] == a[table], table
        assert len(indexes(postgres_url, schemas[1])) > 20  # both tables' on each of 3-4 partitions
        assert indexes(postgres_url, schemas[1]) == indexes(postgres_url, schemas[0])

        # a second load into a log that holds events is refused and adds nothing
        with pytest.raises(BulkLoadRefused, match="empty log"):
            await PostgresBulkLoader(bulk).add(events[:1])
        assert rows(postgres_url, schemas[1]) == b
    finally:
        for log in (appended, bulk):
            await log.close()

    result = await asyncio.to_thread(  # the command runs an event loop of its own
        CliRunner().invoke,
        main,
        ["logs", "verify", "--store", f"{postgres_url}?schema={schemas[1]}"],
        env={LOG_KEYS_ENV: LOG_KEY},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "3,000" in result.output or "3000" in result.output, result.output
