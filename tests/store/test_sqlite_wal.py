"""The embedded log's write-ahead log stays bounded: the writer copies it back into the database file
every few thousand events, so a busy log's WAL does not grow with the log."""

from __future__ import annotations

from pathlib import Path

from consent_gateway.store import open_log
from tests.store.conftest import make_event


async def test_the_wal_of_a_busy_log_stays_smaller_than_the_log_itself(tmp_path: Path) -> None:
    # 24,000 events in batches of 500: six checkpoint periods. Without the queued checkpoints the WAL holds
    # every page written since the log opened (~54 MB here, 3x the database file); with them it holds about
    # one period's pages (~12 MB), and stays below the database file however long the log runs.
    path = tmp_path / "consent.db"
    log = open_log(f"sqlite:///{path}")
    await log.open()
    try:
        for start in range(0, 24_000, 500):
            await log.append([make_event(i) for i in range(start, start + 500)])
        wal = path.with_name("consent.db-wal").stat().st_size
        database = path.stat().st_size
    finally:
        await log.close()
    assert 0 < wal < database, f"WAL {wal / 1e6:.1f} MB against a {database / 1e6:.1f} MB log"
