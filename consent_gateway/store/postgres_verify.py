"""Verifying the PostgreSQL log's hash chains: one streamed pass over every chain, in constant memory.

`postgres.py` runs it on its reader connection; the walk is kept apart from the log's reads and writes.
"""

# SQL here is assembled only from constant fragments (table names, the SELECT of ``postgres_schema``).
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

import psycopg

from consent_gateway.events import ChainHead, ChainVerifier, LogKeys, anchor_text, event_from_values
from consent_gateway.store.base import FORGED_ANCHOR, Checkpoint, VerifyResult, unproven_by
from consent_gateway.store.postgres_schema import SELECT

Conn = psycopg.AsyncConnection[Any]

_VERIFY_FETCH = 2000


async def read_heads(conn: Conn, table: str) -> dict[str, ChainHead]:
    """Each instance's head as ``table`` (``chain_heads`` or ``chain_anchors``) records it."""
    cur = await conn.execute(f"SELECT instance_id, seq, hash FROM {table}")
    return {inst: ChainHead(seq=int(seq), hash=h) for inst, seq, h in await cur.fetchall()}


async def verify_chains(conn: Conn, keys: LogKeys | None, checkpoint: Checkpoint | None) -> VerifyResult:
    """:meth:`~consent_gateway.store.ConsentLog.verify` on one connection."""
    problems: list[tuple[str, str]] = []
    anchors: dict[str, ChainHead] = {}
    cur = await conn.execute("SELECT instance_id, seq, hash, mac FROM chain_anchors")
    for inst, seq, h, mac in await cur.fetchall():
        anchor = ChainHead(seq=int(seq), hash=h)
        if keys is not None and not keys.check(anchor_text(inst, anchor), mac):
            problems.append((f"{inst}@{seq}", FORGED_ANCHOR))
            continue  # the chain must then start at seq 1
        anchors[inst] = anchor
    recorded = await read_heads(conn, "chain_heads")
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

    current: ChainVerifier | None = None
    # A server-side cursor streams every chain in one sorted pass (constant memory).
    async with conn.transaction(), conn.cursor(name="cg_verify") as stream:
        stream.itersize = _VERIFY_FETCH
        await stream.execute(f"{SELECT} ORDER BY e.instance_id, e.seq, e.event_id")
        async for row in stream:
            event = event_from_values(row)
            if current is None or event.instance_id != current.instance_id:
                if current is not None:
                    finish(current)
                current = verifier_for(event.instance_id)
                walked.add(event.instance_id)
            current.feed(event)
    if current is not None:
        finish(current)
    instances = walked | set(recorded) | set(checkpoint.heads if checkpoint else ())
    for instance in sorted(instances - walked):
        finish(verifier_for(instance))
    return VerifyResult.of(
        problems, events_checked=checked, chains=len(instances), unproven=unproven_by(checkpoint, keys)
    )
