"""Clock steps: events recorded while this machine's clock is wrong neither escape retention nor lose their
personal data early, the chain still verifies, and a purge waits while the clocks disagree (store/clock.py).

The wall clock and the monotonic clock are injected separately, so a test steps one without the other, as
a real clock step does (freezegun would move both, and asyncio's own timers with them).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from consent_gateway import metrics
from consent_gateway.cli import main
from consent_gateway.config import RetentionConfig
from consent_gateway.events import ConsentEvent
from consent_gateway.store import ConsentLog, EventFilter, open_log
from consent_gateway.store.clock import LogClock
from consent_gateway.store.recorder import EventRecorder
from consent_gateway.store.retention import DAY_MS, RetentionTask, newest_event_ms
from tests.store.conftest import make_event

YEAR_S = 365 * 86_400.0
RETENTION = RetentionConfig(events_days=395, ip_days=90, run_interval_hours=24, clock_guard_days=30)


class SteppingClock:
    """A wall clock that can step (``step``) and a monotonic clock that only ever runs on (``advance``)."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += seconds


class Gateway:
    """The recorder and the retention task of one gateway, on one clock, as the middleware wires them."""

    def __init__(self, log: ConsentLog, clock: SteppingClock, spool: Path, *, store_clock: bool = False) -> None:
        self.log = log
        self.clock = clock
        self.log_clock = LogClock(
            log.server_time_ms if store_clock else None, wall=clock.time, monotonic=clock.monotonic
        )
        self.recorder = EventRecorder(log, spool_path=spool, instance_id="gw-1", clock=self.log_clock)
        self.retention = RetentionTask(log, RETENTION, lease_seconds=5, log_clock=self.log_clock)
        self._n = 0

    async def start(self) -> None:
        await self.log_clock.sync(newest_event_ms=await newest_event_ms(self.log))
        await self.recorder.start()

    async def consent(self) -> ConsentEvent:
        """One visitor's choice, stamped by this machine's wall clock as the consent route does."""
        self._n += 1
        return await self.recorder.record(make_event(self._n, timestamp_ms=int(self.clock.wall * 1000)))

    async def stop(self) -> None:
        await self.recorder.stop()


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[ConsentLog]:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    yield log
    await log.close()


async def stored(log: ConsentLog) -> list[ConsentEvent]:
    return sorted((await log.query(EventFilter(), limit=1000)).events, key=lambda e: e.seq)


async def test_events_recorded_while_the_clock_is_ten_years_ahead_are_purged_on_time(
    log: ConsentLog, tmp_path: Path
) -> None:
    clock = SteppingClock(time.time())
    start_ms = int(clock.wall * 1000)
    gateway = Gateway(log, clock, tmp_path / "spool")
    await gateway.start()
    for _ in range(5):
        await gateway.consent()
        clock.advance(60)
    before = metrics.value("clock_corrections_total")
    clock.step(10 * YEAR_S)  # the clock jumps ten years ahead
    for _ in range(3):
        await gateway.consent()
        clock.advance(60)
    assert gateway.log_clock.state()["ok"] is False
    clock.step(-10 * YEAR_S)  # and NTP brings it back
    for _ in range(2):
        await gateway.consent()
        clock.advance(60)
    events = await stored(log)
    stamps = [e.timestamp_ms for e in events]
    assert stamps == sorted(stamps)  # a chain's times never go back
    assert max(stamps) < start_ms + 15 * 60_000  # no event stamped ten years ahead
    assert metrics.value("clock_corrections_total") - before == 3
    assert gateway.log_clock.state()["ok"] is True

    clock.advance(400 * 86_400.0)  # past [retention] events_days for all ten
    fresh = await gateway.consent()
    result = await gateway.retention.run_once()
    await gateway.stop()
    # Stamped ten years ahead, three events (and every later one of the chain) would have been kept for ten years.
    assert result is not None and result.events_deleted == 10
    assert [e.event_id for e in await stored(log)] == [fresh.event_id]
    assert (await log.verify()).ok


async def test_events_recorded_while_the_clock_is_behind_keep_their_ip_for_the_full_period(
    log: ConsentLog, tmp_path: Path
) -> None:
    clock = SteppingClock(time.time())
    gateway = Gateway(log, clock, tmp_path / "spool")
    await gateway.start()
    for _ in range(3):
        await gateway.consent()
        clock.advance(60)
    clock.step(-200 * 86_400.0)  # the clock steps 200 days back
    for _ in range(2):
        await gateway.consent()
        clock.advance(60)
    clock.step(200 * 86_400.0)
    clock.advance(30 * 86_400.0)  # 30 days later: every IP is still within [retention] ip_days (90)
    await gateway.consent()
    result = await gateway.retention.run_once()
    await gateway.stop()
    events = await stored(log)
    stamps = [e.timestamp_ms for e in events]
    assert stamps == sorted(stamps)
    # Stamped 200 days back, two events would have lost their IP 170 days early.
    assert result is not None and result.ips_removed == 0
    assert all(e.ip is not None for e in events)
    assert (await log.verify()).ok


async def test_a_gateway_started_with_its_clock_ten_years_ahead_purges_nothing(
    log: ConsentLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now_ms = int(time.time() * 1000)
    earlier = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-0")
    await earlier.start()
    for day in range(10, 0, -1):  # a log kept for ten days, the newest event a day old
        await earlier.record(make_event(day, timestamp_ms=now_ms - day * DAY_MS))
    await earlier.stop()
    # The machine boots with a clock ten years ahead: SQLite has no second clock to tell, so events are
    # stamped with it; the newest event then no longer shows the clock is wrong.
    clock = SteppingClock(time.time() + 10 * YEAR_S)
    gateway = Gateway(log, clock, tmp_path / "spool")
    await gateway.start()
    await gateway.consent()
    assert await gateway.retention.run_once() is None
    await gateway.stop()
    assert await log.count(EventFilter()) == 11
    assert "retention refused" in caplog.text and "when the gateway started" in caplog.text


@pytest.mark.redis
async def test_with_redis_events_take_the_stores_time_and_retention_waits_for_the_clocks_to_agree(
    redis_url: str, redis_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = open_log(f"{redis_url}?prefix={redis_prefix}")
    await log.open()
    try:
        now_ms = int(time.time() * 1000)
        old = [make_event(i, timestamp_ms=now_ms - (500 - i) * DAY_MS) for i in range(3)]
        earlier = EventRecorder(log, spool_path=tmp_path / "spool-0", instance_id="gw-0")
        await earlier.start()
        for event in old:  # 500 days old: due for deletion
            await earlier.record(event)
        await earlier.stop()
        clock = SteppingClock(time.time() + 10 * YEAR_S)  # this machine's clock is ten years ahead from the start
        gateway = Gateway(log, clock, tmp_path / "spool", store_clock=True)
        await gateway.start()
        recorded = await gateway.consent()
        assert abs(recorded.timestamp_ms - time.time() * 1000) < 10_000  # the store's time, not ten years ahead
        state = gateway.log_clock.state()
        assert state["source"] == "store" and state["ok"] is False
        assert state["step_ms"] == pytest.approx(10 * YEAR_S * 1000, rel=1e-3)
        assert await gateway.retention.run_once() is None
        assert await log.count(EventFilter()) == 4
        assert "retention refused" in caplog.text and "ahead of the store" in caplog.text
        clock.step(-10 * YEAR_S)  # the clock is put right: the old events go, the new one stays
        result = await gateway.retention.run_once()
        await gateway.stop()
        assert result is not None and result.events_deleted == 3
        assert [e.event_id for e in (await log.query(EventFilter())).events] == [recorded.event_id]
        assert (await log.verify()).ok
    finally:
        await log.close()


@pytest.mark.redis
def test_logs_purge_refuses_while_this_machines_clock_differs_from_the_stores(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    import asyncio

    url = f"{redis_url}?prefix={redis_prefix}"
    now_ms = int(time.time() * 1000)

    async def fill() -> None:
        log = open_log(url)
        await log.open()
        recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-0")
        await recorder.start()
        for day in range(4, -1, -1):  # oldest first: a chain's times never go back
            await recorder.record(make_event(day, timestamp_ms=now_ms - day * DAY_MS))
        await recorder.stop()
        await log.close()

    asyncio.run(fill())
    # a day ahead: within clock_guard_days of the newest event, so only the store's clock tells
    ahead = dt.datetime.fromtimestamp(now_ms / 1000 + 86_400, dt.UTC)
    with freeze_time(ahead, tick=True):
        refused = CliRunner().invoke(main, ["logs", "purge", "--store", url, "--events-days", "2", "--yes"])
    assert refused.exit_code == 1
    assert "ahead of the store's clock" in refused.output and "--force" in refused.output

    async def count() -> int:
        log = open_log(url)
        await log.open()
        try:
            return await log.count(EventFilter())
        finally:
            await log.close()

    assert asyncio.run(count()) == 5
    done = CliRunner().invoke(main, ["logs", "purge", "--store", url, "--events-days", "2", "--yes"])
    assert done.exit_code == 0, done.output
    assert asyncio.run(count()) == 2


async def test_events_queued_out_of_time_order_are_stamped_in_chain_order(log: ConsentLog, tmp_path: Path) -> None:
    import asyncio

    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-1")
    await recorder.start()
    now_ms = int(time.time() * 1000)
    # requests stamped a few ms apart reach the writer in another order (as concurrent requests do)
    recorded = await asyncio.gather(*(recorder.record(make_event(i, timestamp_ms=now_ms - i)) for i in range(50)))
    await recorder.stop()
    by_seq = sorted(recorded, key=lambda e: e.seq)
    assert [e.timestamp_ms for e in by_seq] == sorted(e.timestamp_ms for e in by_seq)
    assert max(e.timestamp_ms for e in by_seq) == now_ms  # moved forward by at most the inversion, never back
    assert [e.event_id for e in await stored(log)] == [e.event_id for e in by_seq]
    assert (await log.verify()).ok


def test_health_shows_the_clock_the_gateway_stamps_by(tmp_path: Path) -> None:
    from dataclasses import replace

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from consent_gateway.config import Config, GatewayConfig, StoreConfig
    from consent_gateway.middleware import ConsentGateway
    from tests.conftest import TEST_SECRET_KEYS

    config = replace(
        Config(),
        gateway=replace(GatewayConfig(), data_dir=str(tmp_path / "data"), instance_id="gw-health"),
        store=StoreConfig(url=f"sqlite:///{tmp_path / 'data' / 'consent.db'}"),
    )
    with TestClient(ConsentGateway(Starlette(), config, secret_keys=TEST_SECRET_KEYS)) as client:
        health = client.get("/_consent/health").json()
    # SQLite: no second clock, so the gateway holds to its own as it last agreed with itself
    assert health["clock"] == {"source": "local", "step_ms": 0, "ok": True}


def test_logs_purge_names_events_a_clock_ahead_stamped_before_stamps_were_held(tmp_path: Path) -> None:
    import asyncio

    from tests.store.test_contract import chained

    url = f"sqlite:///{tmp_path / 'consent.db'}"
    now_ms = int(time.time() * 1000)

    async def fill() -> None:  # written straight to the log, as a gateway without the reference time did
        log = open_log(url)
        await log.open()
        stamps = [now_ms - 2 * DAY_MS, now_ms + 3 * 365 * DAY_MS, now_ms + 3 * 365 * DAY_MS + 1]
        await log.append(chained([make_event(i, timestamp_ms=ms) for i, ms in enumerate(stamps)]))
        await log.close()

    asyncio.run(fill())
    dry = CliRunner().invoke(main, ["logs", "purge", "--store", url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 events are stamped more than 2 minutes ahead of now" in dry.output
