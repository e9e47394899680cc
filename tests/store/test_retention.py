"""Retention inside the gateway (one instance at a time, through a store lease) and the clock guard shared
with ``logs purge``: a clock far ahead of the log's newest event deletes nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from consent_gateway.cli import main
from consent_gateway.config import RetentionConfig
from consent_gateway.inventory.records import HOST, InventoryEntry, InventoryQuery
from consent_gateway.store import ConsentLog, EventFilter, open_log
from consent_gateway.store.retention import DAY_MS, RetentionTask
from tests.store.conftest import make_event
from tests.store.test_contract import chained

RETENTION = RetentionConfig(events_days=30, ip_days=7, run_interval_hours=24, clock_guard_days=60)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[ConsentLog]:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    now_ms = int(time.time() * 1000)
    # 40 days of events, one a day, the newest today
    await log.append(chained([make_event(i, timestamp_ms=now_ms - (39 - i) * DAY_MS) for i in range(40)]))
    yield log
    await log.close()


async def test_one_instance_purges_and_the_others_skip_the_interval(log: ConsentLog) -> None:
    other = open_log(log.url)
    await other.open()
    try:
        first = await RetentionTask(log, RETENTION, lease_seconds=5).run_once()
        assert first is not None and first.events_deleted == 10  # older than 30 days
        assert await RetentionTask(other, RETENTION, lease_seconds=5).run_once() is None  # done this interval
    finally:
        await other.close()
    assert await log.count(EventFilter()) == 30
    kept = (await log.query(EventFilter(), limit=40)).events
    assert sum(e.ip is not None for e in kept) == 7  # IPs of the last week only


async def test_the_run_removes_inventory_entries_not_seen_for_inventory_days(log: ConsentLog) -> None:
    now_ms = int(time.time() * 1000)

    def host(name: str, seen_ms: int) -> InventoryEntry:
        return InventoryEntry(HOST, name, name, "unclassified", count=1, first_seen_ms=seen_ms, last_seen_ms=seen_ms)

    await log.merge_inventory([host("gone.example", now_ms - 40 * DAY_MS), host("live.example", now_ms - DAY_MS)])
    retention = RetentionConfig(events_days=30, ip_days=7, run_interval_hours=24, inventory_days=30)
    assert await RetentionTask(log, retention, lease_seconds=5).run_once() is not None
    assert [e.name for e in (await log.read_inventory(InventoryQuery())).entries] == ["live.example"]


async def test_an_instance_skips_while_another_holds_the_retention_lease(log: ConsentLog) -> None:
    assert await log.lease("retention", "elsewhere/1/0/aa", 60_000) == "elsewhere/1/0/aa"
    assert await RetentionTask(log, RETENTION, lease_seconds=5).run_once() is None
    assert await log.count(EventFilter()) == 40


async def test_a_clock_far_ahead_purges_nothing(log: ConsentLog, caplog: pytest.LogCaptureFixture) -> None:
    ten_years = 10 * 365 * 86_400
    task = RetentionTask(log, RETENTION, lease_seconds=5, clock=lambda: time.time() + ten_years)
    assert await task.run_once() is None
    assert await log.count(EventFilter()) == 40
    assert "retention refused" in caplog.text and "days ahead of the newest event" in caplog.text


def test_logs_purge_refuses_a_clock_far_ahead_unless_forced(tmp_path: Path) -> None:
    import asyncio
    import datetime as dt

    url = f"sqlite:///{tmp_path / 'consent.db'}"
    now_ms = int(time.time() * 1000)

    async def fill() -> None:
        log = open_log(url)
        await log.open()
        # ten events, one a day, the newest twelve hours ago
        oldest_first = [make_event(i, timestamp_ms=now_ms - i * DAY_MS - DAY_MS // 2) for i in range(9, -1, -1)]
        await log.append(chained(oldest_first))
        await log.close()

    asyncio.run(fill())
    runner = CliRunner()
    ahead = dt.datetime.fromtimestamp(now_ms / 1000 + 100 * 86_400, dt.UTC)  # the clock stepped 100 days ahead
    purge = ["logs", "purge", "--store", url, "--events-days", "105"]  # would keep the last five days only
    with freeze_time(ahead, tick=True):
        refused = runner.invoke(main, [*purge, "--yes"])
        assert refused.exit_code == 1
        assert "days ahead of the newest event in the log" in refused.output and "--force" in refused.output
        dry = runner.invoke(main, [*purge, "--dry-run"])
        assert dry.exit_code == 0 and "Would delete 5 of 10 events" in dry.output
        assert "days ahead of the newest event" in dry.output
        forced = runner.invoke(main, [*purge, "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "Deleted 5 events" in forced.output
