"""Verifying the PostgreSQL log's hash chains: one streamed pass over every chain, in constant memory.

`postgres.py` runs it on its reader connection; the walk is kept apart from the log's reads and writes.
"""

# SQL here is assembled only from constant fragments (table names, the SELECT of ``postgres_schema``).
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

import psycopg

from consent_gateway.events import ChainHead, LogKeys
from consent_gateway.store.base import ChainWalk, Checkpoint, VerifyResult
from consent_gateway.store.postgres_schema import SELECT

Conn = psycopg.AsyncConnection[Any]

_VERIFY_FETCH = 2000


async def read_heads(conn: Conn, table: str) -> dict[str, ChainHead]:
    """Each instance's head as ``table`` (``chain_heads`` or ``chain_anchors``) records it."""
    cur = await conn.execute(f"SELECT instance_id, seq, hash FROM {table}")
    return {inst: ChainHead(seq=int(seq), hash=h) for inst, seq, h in await cur.fetchall()}


async def verify_chains(conn: Conn, keys: LogKeys | None, checkpoint: Checkpoint | None) -> VerifyResult:
    """:meth:`~consent_gateway.store.ConsentLog.verify` on one connection."""
    cur = await conn.execute("SELECT instance_id, seq, hash, mac FROM chain_anchors")
    walk = ChainWalk(await cur.fetchall(), await read_heads(conn, "chain_heads"), keys, checkpoint)
    # A server-side cursor streams every chain in one sorted pass (constant memory).
    async with conn.transaction(), conn.cursor(name="cg_verify") as stream:
        stream.itersize = _VERIFY_FETCH
        await stream.execute(f"{SELECT} ORDER BY e.instance_id, e.seq, e.event_id")
        feed = walk.feed_values  # rows hold an event's values in order: no event is built per row
        async for row in stream:
            feed(row)
    return walk.result()
