"""Verifying the SQLite log's hash chains: anchors checked against their MAC, every chain walked in one
sorted pass, each end compared with the log's head record and the checkpoint.

`sqlite.py` runs it on its reader thread; the walk is kept apart from the log's reads and writes.
"""

# SQL here is assembled only from constant fragments. ruff: noqa: S608

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from consent_gateway.events import ChainHead, ChainVerifier, LogKeys, anchor_text
from consent_gateway.store.base import FORGED_ANCHOR, Checkpoint, VerifyResult, unproven_by
from consent_gateway.store.sqlite_schema import SELECT, from_row


def verify_chains(conn: sqlite3.Connection, keys: LogKeys | None, checkpoint: Checkpoint | None) -> VerifyResult:
    """Every stored event checked against its chain, the chains' recorded heads and ``checkpoint``."""
    problems: list[tuple[str, str]] = []
    anchors: dict[str, ChainHead] = {}
    for inst, seq, h, mac in conn.execute("SELECT instance_id, seq, hash, mac FROM chain_anchors"):
        anchor = ChainHead(seq=seq, hash=h)
        if keys is not None and not keys.check(anchor_text(inst, anchor), mac):
            problems.append((f"{inst}@{seq}", FORGED_ANCHOR))
            continue  # the chain must then start at seq 1
        anchors[inst] = anchor
    recorded = {
        inst: ChainHead(seq=seq, hash=h)
        for inst, seq, h in conn.execute("SELECT instance_id, seq, hash FROM chain_heads")
    }
    walked: set[str] = set()
    checked = 0

    def verifier_for(instance: str) -> ChainVerifier:
        ends = [h for h in (recorded.get(instance), checkpoint and checkpoint.heads.get(instance)) if h]
        return ChainVerifier(instance, anchors.get(instance), heads=ends, keys=keys)

    def finish(verifier: ChainVerifier) -> None:
        nonlocal checked
        verifier.finish(recorded.get(verifier.instance_id), source="the log's head record")
        verifier.finish(checkpoint.heads.get(verifier.instance_id) if checkpoint else None)
        checked += verifier.checked
        problems.extend(verifier.problems)

    # One sorted pass over every chain (no per-chain scan: restarts may leave many chains).
    current: ChainVerifier | None = None
    for row in iter_rows(conn, f"{SELECT} ORDER BY instance_id, seq, rowid_", ()):
        event = from_row(row)
        if current is None or event.instance_id != current.instance_id:
            if current is not None:
                finish(current)
            current = verifier_for(event.instance_id)
            walked.add(event.instance_id)
        current.feed(event)
    if current is not None:
        finish(current)
    # Chains the log's head records or the checkpoint know of but which have no event left.
    instances = walked | set(recorded) | set(checkpoint.heads if checkpoint else ())
    for instance in sorted(instances - walked):
        finish(verifier_for(instance))
    return VerifyResult.of(
        problems, events_checked=checked, chains=len(instances), unproven=unproven_by(checkpoint, keys)
    )


def iter_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
    cur = conn.execute(sql, params)
    while rows := cur.fetchmany(1000):
        yield from rows
