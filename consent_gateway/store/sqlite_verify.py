"""Verifying the SQLite log's hash chains: anchors checked against their MAC, every chain walked in one
sorted pass, each end compared with the log's head record and the checkpoint.

`sqlite.py` runs it on its reader thread; the walk is kept apart from the log's reads and writes.
"""

# SQL here is assembled only from constant fragments. ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from consent_gateway.events import ChainHead, LogKeys
from consent_gateway.store.base import ChainWalk, Checkpoint, VerifyResult
from consent_gateway.store.sqlite_schema import SELECT, values_of_row


def verify_chains(conn: sqlite3.Connection, keys: LogKeys | None, checkpoint: Checkpoint | None) -> VerifyResult:
    """Every stored event checked against its chain, the chains' recorded heads and ``checkpoint``."""
    anchors = conn.execute("SELECT instance_id, seq, hash, mac FROM chain_anchors").fetchall()
    recorded = {
        inst: ChainHead(seq=seq, hash=h)
        for inst, seq, h in conn.execute("SELECT instance_id, seq, hash FROM chain_heads")
    }
    walk = ChainWalk(anchors, recorded, keys, checkpoint)
    # One sorted pass over every chain (no per-chain scan: restarts may leave many chains).
    feed = walk.feed_values
    for row in iter_rows(conn, f"{SELECT} ORDER BY instance_id, seq, rowid_", ()):
        feed(values_of_row(row))
    return walk.result()


def iter_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
    cur = conn.execute(sql, params)
    while rows := cur.fetchmany(1000):
        yield from rows
