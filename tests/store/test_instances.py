"""Several gateway processes on one log (Redis, or one SQLite file): nothing lost or doubled, chains verify.

Each writer is a separate OS process with its own EventRecorder and instance id; the tests count every
acknowledged event against what the log holds, through a Redis restart and a writer killed mid-burst.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_sync

from consent_gateway.store import EventFilter, open_log
from tests.store.conftest import RedisProcess

WRITER = Path(__file__).with_name("writer_process.py")
pytestmark = [pytest.mark.slow]


def start_writer(redis: RedisProcess | str, tmp_path: Path, instance: str, **options: object) -> subprocess.Popen[str]:
    url = redis if isinstance(redis, str) else redis.url
    args = [
        sys.executable,
        str(WRITER),
        *("--url", url, "--instance", instance),
        *("--spool", str(tmp_path / "spool"), "--acked", str(tmp_path / f"{instance}.acked")),
    ]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> None:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "done spool_depth=0" in out, err


def acked(tmp_path: Path, instance: str) -> list[str]:
    return (tmp_path / f"{instance}.acked").read_text().split()


def wait_for_lines(path: Path, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or len(path.read_text().split()) < n:
        assert time.monotonic() < deadline, f"{path.name} never reached {n} acknowledged events"
        time.sleep(0.02)


async def check_log(redis: RedisProcess, acknowledged: set[str], instances: list[str]) -> None:
    """Every acknowledged event is stored exactly once and every chain verifies.

    A writer that started while Redis was down runs a fresh chain ``<instance>.<ms>``: counted too.
    """
    with redis_sync.Redis.from_url(redis.url, decode_responses=True) as raw:
        stored = raw.hkeys("{cg}:ev")
        chains = raw.smembers("{cg}:chains")
        assert all(c.split(".")[0] in instances for c in chains)
        chain_members = [m for chain in chains for m in raw.zrange("{cg}:chain:" + chain, 0, -1)]
        time_index = raw.zcard("{cg}:t")
    assert len(stored) == len(set(stored))
    assert acknowledged <= set(stored), f"{len(acknowledged - set(stored))} acknowledged events lost"
    assert len(chain_members) == len(set(chain_members)) == len(stored) == time_index
    log = open_log(redis.url)
    await log.open()
    result = await log.verify()
    await log.close()
    assert result.ok, result.problems[:3]
    assert result.events_checked == len(stored)


async def test_three_writer_processes_on_one_sqlite_file_lose_and_double_nothing(tmp_path: Path) -> None:
    """As under ``uvicorn --workers 3``: one file, three processes, each its own chain and spool."""
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    instances = ["gw-1", "gw-2", "gw-3"]
    writers = [start_writer(url, tmp_path, inst, count=300) for inst in instances]
    for writer in writers:
        finish(writer)
    acknowledged = {eid for inst in instances for eid in acked(tmp_path, inst)}
    assert len(acknowledged) == 900
    log = open_log(url)
    await log.open()
    stored = [e.event_id async for e in log.export(EventFilter())]
    result = await log.verify()
    await log.close()
    assert len(stored) == len(set(stored)) == 900
    assert set(stored) == acknowledged
    assert result.ok and result.chains == 3


async def test_a_sqlite_writer_killed_mid_burst_keeps_every_acknowledged_event(tmp_path: Path) -> None:
    """kill -9 between checkpoints: what was acknowledged is in the WAL (synced at each commit) and comes back
    when the file is opened again; the chain verifies."""
    url = f"sqlite:///{tmp_path / 'consent.db'}"
    victim = start_writer(url, tmp_path, "gw-1", count=4000, pause=0.001)
    wait_for_lines(tmp_path / "gw-1.acked", 600)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    acknowledged = set(acked(tmp_path, "gw-1"))
    assert (tmp_path / "consent.db-wal").stat().st_size > 0  # killed with events still in the WAL
    log = open_log(url)
    await log.open()
    stored = [e.event_id async for e in log.export(EventFilter())]
    result = await log.verify()
    await log.close()
    assert len(stored) == len(set(stored))
    assert acknowledged <= set(stored), f"{len(acknowledged - set(stored))} acknowledged events lost"
    assert result.ok and result.events_checked == len(stored)


@pytest.mark.redis
async def test_three_writers_on_one_redis_lose_and_double_nothing(own_redis: RedisProcess, tmp_path: Path) -> None:
    instances = ["gw-1", "gw-2", "gw-3"]
    writers = [start_writer(own_redis, tmp_path, inst, count=400) for inst in instances]
    for writer in writers:
        finish(writer)
    acknowledged = {eid for inst in instances for eid in acked(tmp_path, inst)}
    assert len(acknowledged) == 1200
    await check_log(own_redis, acknowledged, instances)


@pytest.mark.redis
async def test_redis_restarted_mid_burst_under_three_writers(own_redis: RedisProcess, tmp_path: Path) -> None:
    instances = ["gw-1", "gw-2", "gw-3"]
    writers = [start_writer(own_redis, tmp_path, inst, count=400, pause=0.02) for inst in instances]
    wait_for_lines(tmp_path / "gw-1.acked", 50)
    own_redis.stop(kill=True)
    time.sleep(0.5)
    own_redis.start()
    for writer in writers:
        finish(writer)
    acknowledged = {eid for inst in instances for eid in acked(tmp_path, inst)}
    assert len(acknowledged) == 1200
    await check_log(own_redis, acknowledged, instances)


@pytest.mark.redis
@pytest.mark.parametrize("restart_as", ["gw-1", "gw-1-restarted"], ids=["same-instance-id", "new-instance-id"])
async def test_a_writer_killed_mid_burst_replays_its_spool_on_restart(
    own_redis: RedisProcess, tmp_path: Path, restart_as: str
) -> None:
    # Redis is down while the writer runs, so its events are in the spool when it is killed. The default
    # instance id names the process, so a real restart usually comes back under a new one.
    own_redis.stop()
    victim = start_writer(own_redis, tmp_path, "gw-1", count=400, pause=0.01)
    wait_for_lines(tmp_path / "gw-1.acked", 100)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    before_restart = set(acked(tmp_path, "gw-1"))
    own_redis.start()
    finish(start_writer(own_redis, tmp_path, restart_as, count=100))
    acknowledged = set(acked(tmp_path, "gw-1")) | set(acked(tmp_path, restart_as))
    assert len(acknowledged) >= len(before_restart) + 100
    await check_log(own_redis, acknowledged, sorted({"gw-1", restart_as}))
