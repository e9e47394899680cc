"""The inventory on Redis (and Redis Cluster): one HASH per kind, merged by a Lua script.

    {cg}:inv:<kind>   HASH  entry key → the entry's stored fields as JSON (InventoryEntry.stored_fields)

The keys carry the log's hash tag like every other key, so on a cluster the script runs on the log's slot.
The script merges as the SQL backends do (counts add, first seen min, last seen max, element kinds OR, the
smallest distinct sample paths, vendor, name and detail from the more recent sighting), atomically: two
instances flushing at once never lose a count. Reads take a kind's whole hash and select in Python: the
inventory is bounded by what a site uses (hosts, cookie names), not by traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson

from consent_gateway.inventory.records import (
    HOST,
    KINDS,
    MAX_SAMPLES,
    UNCLASSIFIED,
    InventoryEntry,
    InventoryPage,
    InventoryQuery,
    InventorySize,
    merge_all,
    sort_key,
)

#: entries merged per script call (a call blocks Redis while it runs: a few ms at most)
ENTRIES_PER_CALL: Final = 500

# KEYS: the hash of each kind, in KINDS order. ARGV[1]: [[kind index into KEYS, key, stored fields], …];
# ARGV[2]: the most samples kept.
MERGE_LUA: Final = """
local batch = cjson.decode(ARGV[1])
local max_samples = tonumber(ARGV[2])
local added = {'count', 'held', 'allowed', 'dropped', 'passed', 'capped'}
for i = 1, #batch do
  local item = batch[i]
  local hash, key, new = KEYS[item[1]], item[2], item[3]
  local raw = redis.call('HGET', hash, key)
  if raw then
    local old = cjson.decode(raw)
    for _, name in ipairs(added) do new[name] = (old[name] or 0) + (new[name] or 0) end
    if new['last_seen_ms'] < old['last_seen_ms'] then
      new['name'], new['vendor'], new['detail'] = old['name'], old['vendor'], old['detail']
    end
    new['element_kinds'] = bit.bor(old['element_kinds'] or 0, new['element_kinds'] or 0)
    local seen, list = {}, {}
    for _, group in ipairs({old['samples'] or {}, new['samples'] or {}}) do
      for _, s in ipairs(group) do
        if not seen[s] then seen[s] = true; list[#list + 1] = s end
      end
    end
    table.sort(list)
    local kept = {}
    for j = 1, math.min(max_samples, #list) do kept[j] = list[j] end
    new['samples'] = kept
    new['first_seen_ms'] = math.min(old['first_seen_ms'], new['first_seen_ms'])
    new['last_seen_ms'] = math.max(old['last_seen_ms'], new['last_seen_ms'])
  end
  redis.call('HSET', hash, key, cjson.encode(new))
end
return #batch
"""


# KEYS[1]: one kind's hash. ARGV[1]: the cutoff (ms); ARGV[2…]: entry keys found older. Each is checked again
# here, atomically: an entry another instance merged a newer sighting into meanwhile is kept.
PRUNE_LUA: Final = """
local removed = 0
local cutoff = tonumber(ARGV[1])
for i = 2, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw and cjson.decode(raw)['last_seen_ms'] < cutoff then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""


def kind_keys(tag: str) -> list[str]:
    """The hash of each kind, in :data:`KINDS` order (``tag`` is ``{prefix}:``)."""
    return [f"{tag}inv:{kind}" for kind in KINDS]


def script_calls(entries: Iterable[InventoryEntry]) -> list[str]:
    """ARGV[1] of each script call for a batch."""
    batch = [[KINDS.index(e.kind) + 1, e.key, e.stored_fields()] for e in merge_all(entries)]
    return [orjson.dumps(batch[i : i + ENTRIES_PER_CALL]).decode() for i in range(0, len(batch), ENTRIES_PER_CALL)]


async def merge(client: Any, script: Any, tag: str, entries: Iterable[InventoryEntry]) -> None:
    keys = kind_keys(tag)
    for call in script_calls(entries):
        await script(keys=keys, args=[call, MAX_SAMPLES], client=client)


async def read(client: Any, tag: str, query: InventoryQuery) -> InventoryPage:
    kinds = [query.kind] if query.kind is not None else list(KINDS)
    found: list[InventoryEntry] = []
    for kind in kinds:
        raw: dict[str, str] = await client.hgetall(f"{tag}inv:{kind}")
        for key, value in raw.items():
            entry = InventoryEntry.from_stored(kind, key, orjson.loads(value))
            if query.matches(entry):
                found.append(entry)
    found.sort(key=sort_key)
    return InventoryPage(found[query.offset : query.offset + query.limit], len(found))


async def prune(client: Any, script: Any, tag: str, seen_before_ms: int) -> int:
    """Remove the entries last seen before ``seen_before_ms``, kind by kind, a chunk of keys per script call."""
    removed = 0
    for key in kind_keys(tag):
        old: list[str] = []
        async for field, value in client.hscan_iter(key, count=ENTRIES_PER_CALL):
            if orjson.loads(value).get("last_seen_ms", 0) < seen_before_ms:
                old.append(field)
        for i in range(0, len(old), ENTRIES_PER_CALL):
            removed += int(await script(keys=[key], args=[seen_before_ms, *old[i : i + ENTRIES_PER_CALL]],
                                        client=client))
    return removed


async def size(client: Any, tag: str) -> InventorySize:
    by_kind = {kind: int(await client.hlen(f"{tag}inv:{kind}")) for kind in KINDS}
    hosts: list[str] = await client.hvals(f"{tag}inv:{HOST}")
    unclassified = sum(1 for value in hosts if orjson.loads(value).get("vendor") == UNCLASSIFIED)
    return InventorySize({kind: n for kind, n in by_kind.items() if n}, unclassified)
