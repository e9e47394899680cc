"""EventRecorder: grouped commits, the spool when the log is down or slow, replay, restarts."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis as redis_sync

from consent_gateway import metrics
from consent_gateway.errors import SpoolError, StoreUnavailable
from consent_gateway.events import ConsentEvent
from consent_gateway.store import EventFilter, open_log
from consent_gateway.store.base import SendAppend
from consent_gateway.store.recorder import EventRecorder
from consent_gateway.store.redis import RedisConsentLog
from consent_gateway.store.spool import Spool
from consent_gateway.store.sqlite import SQLiteConsentLog
from tests.store.conftest import RedisProcess, make_event


class CountingSQLiteLog(SQLiteConsentLog):
    """The real SQLite backend, counting its commits."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    def prepare_append(self, events: Sequence[ConsentEvent]) -> SendAppend:
        # counted when sent: the recorder prepares each batch ahead, and append() goes through here too
        send = super().prepare_append(events)

        async def counted() -> None:
            self.batches.append(len(events))
            await send()

        return counted


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sqlite_log(tmp_path: Path):  # type: ignore[no-untyped-def]
    log = CountingSQLiteLog(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    yield log
    await log.close()


async def test_record_returns_the_chained_event_once_it_is_in_the_log(
    sqlite_log: CountingSQLiteLog, tmp_path: Path
) -> None:
    recorder = EventRecorder(sqlite_log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await recorder.start()
    first = await recorder.record(make_event(1))
    second = await recorder.record(make_event(2))
    await recorder.stop()
    assert (first.seq, first.prev_hash, first.instance_id) == (1, "", "gw-a")
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert await sqlite_log.get(second.event_id) == second
    assert recorder.spool_depth == 0


async def test_concurrent_records_are_committed_together(sqlite_log: CountingSQLiteLog, tmp_path: Path) -> None:
    recorder = EventRecorder(sqlite_log, spool_path=tmp_path / "spool", instance_id="gw-a", max_batch=100)
    await recorder.start()
    recorded = await asyncio.gather(*(recorder.record(make_event(i)) for i in range(300)))
    await recorder.stop()
    assert len({e.event_id for e in recorded}) == 300
    assert sum(sqlite_log.batches) == 300
    assert len(sqlite_log.batches) <= 6  # grouped, not one commit per event
    assert max(sqlite_log.batches) <= 100
    assert (await sqlite_log.verify()).ok


async def test_a_restarted_recorder_continues_its_chain(sqlite_log: CountingSQLiteLog, tmp_path: Path) -> None:
    for _ in range(2):
        recorder = EventRecorder(sqlite_log, spool_path=tmp_path / "spool", instance_id="gw-a")
        await recorder.start()
        await asyncio.gather(*(recorder.record(make_event(i)) for i in range(10)))
        await recorder.stop()
    heads = await sqlite_log.chain_heads()
    assert heads["gw-a"].seq == 20
    assert (await sqlite_log.verify()).ok


async def test_a_closed_log_sends_events_to_the_spool_which_replays_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    log = open_log(url)
    await log.open()
    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a", replay_interval_s=0.05)
    await recorder.start()
    await recorder.record(make_event(0))
    await log.close()  # the log goes away under the recorder
    acked = await asyncio.gather(*(recorder.record(make_event(i)) for i in range(1, 31)))
    assert metrics.value("spooled_events_total") == 30
    assert metrics.value("store_errors_total", operation="append") >= 1
    await log.open()  # and comes back
    await wait_until(lambda: recorder.spool_depth == 0)
    await recorder.stop()
    assert await log.count(EventFilter()) == 31
    assert [await log.get(e.event_id) for e in acked] == acked
    assert metrics.value("replayed_events_total") == 30
    assert (await log.verify()).ok
    await log.close()


async def test_the_spool_survives_a_restart_and_replay_doubles_nothing(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await recorder.start()
    await log.close()
    acked = [await recorder.record(make_event(i)) for i in range(20)]
    await recorder.stop()  # the log is still down: the events stay in the spool
    assert recorder.spool_depth == 20
    await log.open()
    await log.append(acked[:12])  # as if a replay had reached the log but not its offset file
    again = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a", replay_interval_s=0.05)
    await again.start()
    await wait_until(lambda: again.spool_depth == 0)
    later = await again.record(make_event(99))
    await again.stop()
    assert await log.count(EventFilter()) == 21
    assert later.seq == 21
    assert (await log.verify()).ok
    await log.close()


async def test_a_log_down_at_start_continues_the_chain_from_the_spool(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    first = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await first.start()
    for i in range(3):
        await first.record(make_event(i))
    await log.close()
    for i in range(3, 6):
        await first.record(make_event(i))  # spooled
    await first.stop()
    second = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a", replay_interval_s=0.05)
    await second.start()  # the log is still down: the spool knows the head
    nxt = await second.record(make_event(6))
    assert (nxt.instance_id, nxt.seq) == ("gw-a", 7)
    await log.open()
    await wait_until(lambda: second.spool_depth == 0)
    await second.stop()
    assert await log.count(EventFilter()) == 7
    assert (await log.verify()).ok
    await log.close()


async def test_a_log_down_at_start_gets_a_fresh_chain_and_is_opened_once_it_can_be(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the log's folder should be: opening fails")
    log = open_log(f"sqlite:///{blocker / 'consent.db'}")
    with pytest.raises(StoreUnavailable):
        await log.open()
    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a", replay_interval_s=0.05)
    await recorder.start()
    event = await recorder.record(make_event(1))
    assert event.instance_id.startswith("gw-a.")  # the head is unknown: a new chain, never a fork
    assert event.seq == 1
    blocker.unlink()  # the operator fixes the disk; the recorder opens the log by itself
    await wait_until(lambda: recorder.spool_depth == 0)
    await recorder.stop()
    assert (await log.verify()).ok
    await log.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to fill the spool's disk")
async def test_spool_error_when_neither_the_log_nor_the_spool_keeps_the_event(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await recorder.start()
    kept = await recorder.record(make_event(0))
    await log.close()
    # The spool's disk is full: its file descriptor now writes to /dev/full (ENOSPC).
    spool_fd = recorder.spool.spool._fd
    assert spool_fd is not None
    saved = os.dup(spool_fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, spool_fd)
    with pytest.raises(SpoolError):
        refused = make_event(1)
        await recorder.record(refused)
    assert metrics.value("store_errors_total", operation="spool") == 1
    assert recorder.spool_depth == 0  # the refused event is not kept for later
    os.dup2(saved, spool_fd)
    os.close(saved)
    os.close(full)
    # The log returns: the refused event never appears; the next one takes its place, so no hole either.
    await log.open()
    nxt = await recorder.record(make_event(2))
    await recorder.stop()
    assert (kept.seq, nxt.seq) == (1, 2)
    assert await log.count(EventFilter()) == 2
    assert await log.get(refused.event_id) is None
    assert (await log.verify()).ok
    await log.close()


def test_a_spool_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").mkdir()
    with pytest.raises((SpoolError, IsADirectoryError)):
        Spool(tmp_path / "s.jsonl").open()


@pytest.mark.redis
async def test_a_slow_redis_sends_the_batch_to_the_spool_and_nothing_is_doubled(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    log = open_log(own_redis.url)
    await log.open()
    recorder = EventRecorder(
        log, spool_path=tmp_path / "spool", instance_id="gw-a", append_timeout_s=0.3, replay_interval_s=0.1
    )
    await recorder.start()
    with redis_sync.Redis.from_url(own_redis.url) as raw:
        raw.execute_command("CLIENT", "PAUSE", "1200", "WRITE")
    started = time.monotonic()
    acked = await asyncio.gather(*(recorder.record(make_event(i)) for i in range(40)))
    assert time.monotonic() - started < 1.0  # answered from the spool, not after the pause
    assert metrics.value("spooled_events_total") >= 40
    await wait_until(lambda: recorder.spool_depth == 0)
    await recorder.stop()
    assert await log.count(EventFilter()) == 40
    assert {e.event_id for e in acked} == {e.event_id async for e in log.export(EventFilter())}
    assert (await log.verify()).ok
    await log.close()


@pytest.mark.redis
async def test_redis_stopped_mid_burst_loses_and_doubles_nothing(own_redis: RedisProcess, tmp_path: Path) -> None:
    log = RedisConsentLog(own_redis.url, socket_timeout_s=0.5, connect_timeout_s=0.5)
    await log.open()
    recorder = EventRecorder(
        log, spool_path=tmp_path / "spool", instance_id="gw-a", append_timeout_s=0.5, replay_interval_s=0.1
    )
    await recorder.start()
    acked: list[ConsentEvent] = []

    async def visitor(k: int) -> None:
        for i in range(25):
            acked.append(await recorder.record(make_event(k * 100 + i)))
            await asyncio.sleep(0.004)

    burst = asyncio.gather(*(visitor(k) for k in range(8)))
    await asyncio.sleep(0.1)
    own_redis.stop(kill=True)
    await asyncio.sleep(0.3)
    own_redis.start()
    await burst
    await wait_until(lambda: recorder.spool_depth == 0)
    await recorder.stop()
    stored = [e.event_id async for e in log.export(EventFilter())]
    assert len(acked) == 200
    assert len(stored) == len(set(stored)) == 200
    assert set(stored) == {e.event_id for e in acked}
    assert metrics.value("spooled_events_total") > 0
    assert (await log.verify()).ok
    await log.close()


def test_a_torn_last_line_is_cut_when_the_spool_opens(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.open()
    spool.append([make_event(1), make_event(2)])
    spool.close()
    with open(tmp_path / "s.jsonl", "ab") as f:
        f.write(b'{"event_id": "half-writ')
    again = Spool(tmp_path / "s.jsonl")
    again.open()
    assert again.depth == 2
    again.append([make_event(3)])
    assert [e.consent_id for e in again.read_pending(10).events] == ["consent-1", "consent-2", "consent-3"]
    again.close()


def test_two_processes_cannot_share_one_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s.jsonl")
    first.open()
    with pytest.raises(SpoolError, match="instance id"):
        Spool(tmp_path / "s.jsonl").open()
    first.close()


def test_the_spool_file_is_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    spool.open()
    spool.close()
    assert (tmp_path / "s.jsonl").stat().st_mode & 0o077 == 0


async def test_an_event_that_cannot_be_serialised_fails_alone(sqlite_log: CountingSQLiteLog, tmp_path: Path) -> None:
    import dataclasses

    recorder = EventRecorder(sqlite_log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await recorder.start()
    bad = dataclasses.replace(make_event(1), categories={"analytics": object()})  # type: ignore[dict-item]
    results = await asyncio.gather(
        recorder.record(make_event(0)), recorder.record(bad), recorder.record(make_event(2)), return_exceptions=True
    )
    assert isinstance(results[1], TypeError)
    assert [r.seq for r in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]
    assert (await recorder.record(make_event(3))).seq == 3  # the writer is still alive
    await recorder.stop()
    assert (await sqlite_log.verify()).ok


async def test_cancelling_the_recorders_tasks_does_not_hang(sqlite_log: CountingSQLiteLog, tmp_path: Path) -> None:
    recorder = EventRecorder(sqlite_log, spool_path=tmp_path / "spool", instance_id="gw-a")
    await recorder.start()
    await recorder.record(make_event(0))
    tasks = [recorder._writer_task, recorder._replay_task]
    for task in tasks:
        assert task is not None
        task.cancel()
    done, pending = await asyncio.wait([t for t in tasks if t], timeout=2)
    assert not pending
    await recorder.spool.close()


async def test_once_the_log_is_back_new_events_skip_the_spool(tmp_path: Path) -> None:
    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="gw-a", replay_interval_s=0.05)
    await recorder.start()
    await log.close()
    await asyncio.gather(*(recorder.record(make_event(i)) for i in range(10)))
    await recorder.record(make_event(10))  # the log is known down: straight to the spool, no timeout
    assert metrics.value("spooled_events_total") == 11
    assert metrics.value("store_errors_total", operation="append") == 1
    await log.open()
    await wait_until(lambda: recorder.spool_depth == 0)
    await asyncio.gather(*(recorder.record(make_event(i)) for i in range(11, 20)))
    assert metrics.value("spooled_events_total") == 11  # the later ones went to the log directly
    await recorder.stop()
    assert await log.count(EventFilter()) == 20
    assert (await log.verify()).ok
    await log.close()


async def test_a_restart_under_a_new_instance_id_replays_the_old_processs_spool(tmp_path: Path) -> None:
    # The default instance id names the process, so a restarted gateway has a new one.
    from consent_gateway.events import EventChain

    log = open_log(f"sqlite:///{tmp_path / 'consent.db'}")
    await log.open()
    chain = EventChain("host-1234")
    left_behind = [chain.append(make_event(i)) for i in range(7)]
    old = Spool(tmp_path / "spool" / "host-1234.jsonl")
    old.open()
    old.append(left_behind)
    old.close()  # the process died: its lock is gone
    empty = Spool(tmp_path / "spool" / "host-999.jsonl")
    empty.open()
    empty.close()
    alive = Spool(tmp_path / "spool" / "host-5678.jsonl")  # another instance, still running
    alive.open()
    alive.append([EventChain("host-5678").append(make_event(50))])

    recorder = EventRecorder(log, spool_path=tmp_path / "spool", instance_id="host-4321", replay_interval_s=0.05)
    await recorder.start()
    assert not (tmp_path / "spool" / "host-999.jsonl").exists()
    await wait_until(lambda: recorder.spool_depth == 0)
    await recorder.record(make_event(8))
    await recorder.stop()
    assert not (tmp_path / "spool" / "host-1234.jsonl").exists()
    assert (tmp_path / "spool" / "host-5678.jsonl").exists()  # left to its live owner
    assert {e.event_id async for e in log.export(EventFilter())} >= {e.event_id for e in left_behind}
    assert await log.count(EventFilter()) == 8
    assert (await log.verify()).ok
    alive.close()
    await log.close()
