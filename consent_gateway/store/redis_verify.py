"""Verifying the Redis log's hash chains: anchors checked, each chain walked in pages, stray records found.

`redis.py` calls these with its client and key names; the walk is kept apart from the log's reads and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consent_gateway.events import ChainHead, ChainVerifier, LogKeys, anchor_text, values_from_dict
from consent_gateway.store.base import FORGED_ANCHOR, OUTSIDE_CHAINS, Checkpoint, VerifyResult, unproven_by
from consent_gateway.store.redis_layout import SCAN_CHUNK, loads


async def read_anchors(
    client: Any, anchors_key: str, log_keys: LogKeys | None, problems: list[tuple[str, str]] | None = None
) -> dict[str, ChainHead]:
    """Where purged chains start; with ``problems``, anchors whose MAC fails are reported and dropped."""
    anchors: dict[str, ChainHead] = {}
    for instance, raw in (await client.hgetall(anchors_key)).items():
        data = loads(raw)
        anchor = ChainHead(seq=int(data["seq"]), hash=str(data["hash"]))
        if problems is not None and log_keys is not None:
            if not log_keys.check(anchor_text(instance, anchor), str(data.get("mac", ""))):
                problems.append((f"{instance}@{anchor.seq}", FORGED_ANCHOR))
                continue
        anchors[instance] = anchor
    return anchors


async def verify_chains(
    client: Any,
    *,
    events_key: str,
    chains_key: str,
    chain_prefix: str,
    anchors_key: str,
    log_keys: LogKeys | None,
    checkpoint: Checkpoint | None,
) -> VerifyResult:
    """:meth:`~consent_gateway.store.ConsentLog.verify` on the keys of one log (Redis errors propagate)."""
    problems: list[tuple[str, str]] = []
    anchors = await read_anchors(client, anchors_key, log_keys, problems)
    instances = sorted(set(await client.smembers(chains_key)) | set(checkpoint.heads if checkpoint else ()))
    checked = 0
    in_chains = 0
    for instance in instances:
        end = checkpoint.heads.get(instance) if checkpoint else None
        verifier = ChainVerifier(instance, anchors.get(instance), heads=[end] if end else [], keys=log_keys)
        start = 0
        while True:
            ids = await client.zrange(chain_prefix + instance, start, start + SCAN_CHUNK - 1)
            if not ids:
                break
            start += len(ids)
            # the stored JSON's values are walked as they are: no event is built per record
            for event_id, raw in zip(ids, await client.hmget(events_key, ids), strict=True):
                in_chains += raw is not None
                if raw is None:
                    verifier.checked += 1
                    verifier.problems.append((event_id, "record deleted (its chain entry remains)"))
                else:
                    verifier.feed_values(values_from_dict(loads(raw)))
        verifier.finish(checkpoint.heads.get(instance) if checkpoint else None)
        checked += verifier.checked
        problems += verifier.problems
    if int(await client.hlen(events_key)) != in_chains:
        strays = await _events_outside_chains(client, events_key, chain_prefix, instances)
        checked += len(strays)
        problems += [(event_id, OUTSIDE_CHAINS) for event_id in strays]
    unproven = unproven_by(checkpoint, log_keys)
    return VerifyResult.of(problems, events_checked=checked, chains=len(instances), unproven=unproven)


async def _events_outside_chains(
    client: Any, events_key: str, chain_prefix: str, instances: Sequence[str]
) -> list[str]:
    """Stored events no chain holds (rare: only then is every chained id gathered in memory)."""
    chained: set[str] = set()
    for instance in instances:
        chained.update(await client.zrange(chain_prefix + instance, 0, -1))
    strays: list[str] = []
    async for event_id, _ in client.hscan_iter(events_key, count=SCAN_CHUNK):
        if event_id not in chained:
            strays.append(event_id)
    return sorted(strays)
