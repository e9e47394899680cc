"""The Redis backend's layout: key names, the append script, events read back, time members, persistence checks.

`redis.py` holds the operations; this module holds what they agree on, so the key layout in `redis.py`'s
docstring is written down in code once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from consent_gateway.events import ConsentEvent, event_from_dict

logger = logging.getLogger("consent_gateway.store.redis")

# KEYS: ev, t, chains, erasures. ARGV[1]: the key prefix ("{cg}:"); ARGV[2]: a JSON array of
# [event_id, time member, consent_id, instance, seq, byte length of the event's JSON, timestamp ms];
# ARGV[3]: the events' JSON, concatenated. Three arguments per batch, and no JSON escaped inside JSON:
# packing thousands of small arguments costs the client more than the script costs Redis.
# The per-consent and per-chain keys are derived here; they share the hash tag, hence the slot.
# An event older than an erasure of its consent id (replayed late from a spool) is stored erased, as
# `events.erase_personal` does: personal fields and salts gone, commitments kept.
APPEND_LUA = """
local prefix = ARGV[1]
local batch = cjson.decode(ARGV[2])
local bodies = ARGV[3]
local any_erasure = redis.call('HLEN', KEYS[4]) > 0
local pos = 1
local added = 0
for i = 1, #batch do
  local e = batch[i]
  local id = e[1]
  local body = string.sub(bodies, pos, pos + e[6] - 1)
  pos = pos + e[6]
  if any_erasure and redis.call('HEXISTS', KEYS[1], id) == 0 then
    local erased_at = tonumber(redis.call('HGET', KEYS[4], e[3]) or '')
    if erased_at and erased_at >= e[7] then
      local ev = cjson.decode(body)
      if ev['erased_at_ms'] == cjson.null then
        for _, name in ipairs({'ip', 'user_agent', 'page_path', 'referrer_host'}) do ev[name] = cjson.null end
        ev['salts'] = {}
        ev['erased_at_ms'] = erased_at
        body = cjson.encode(ev)
      end
    end
  end
  if redis.call('HSETNX', KEYS[1], id, body) == 1 then
    redis.call('ZADD', KEYS[2], 0, e[2])
    redis.call('ZADD', prefix .. 'c:' .. e[3], 0, e[2])
    redis.call('ZADD', prefix .. 'chain:' .. e[4], e[5], id)
    redis.call('SADD', KEYS[3], e[4])
    added = added + 1
  end
end
return added
"""

# Coordination (store/coordination.py). KEYS[1]: the lease; ARGV: holder, TTL ms, the holder it may be
# taken from ("" for none). Returns who holds it afterwards.
LEASE_LUA = """
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] or (ARGV[3] ~= '' and current == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return current
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A fixed-window counter: the first hit of a window sets its expiry.
INCR_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

dump_bytes = orjson.dumps
loads = orjson.loads

#: events read or keys scanned per round trip
SCAN_CHUNK = 1000


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def load_events(client: Any, events_key: str, event_ids: Sequence[str]) -> list[ConsentEvent | None]:
    """The stored events of ``event_ids`` (None where one is missing), in one HMGET."""
    if not event_ids:
        return []
    raw = await client.hmget(events_key, list(event_ids))
    return [event_from_dict(loads(r)) if r is not None else None for r in raw]


def time_member(timestamp_ms: int, event_id: str) -> str:
    return f"{timestamp_ms:013d}:{event_id}"


def time_bound(ms: int | None, *, low: bool) -> str:
    """Lex bound for "time >= ms" (low) or "time < ms" (high)."""
    if ms is None:
        return "-" if low else "+"
    return f"[{max(ms, 0):013d}" if low else f"({max(ms, 0):013d}"


def split_url(url: str) -> tuple[str, str]:
    """The URL without our ``prefix`` query parameter, and the prefix (default ``cg``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "cg")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def warn_if_not_durable(config: dict[str, str], where: str) -> None:
    """Log loudly when Redis' persistence settings (``CONFIG GET``) would lose consent records."""
    aof = config.get("appendonly") == "yes"
    rdb = bool(config.get("save", "").strip())
    if not aof and not rdb:
        logger.warning(
            "REDIS PERSISTENCE IS OFF at %s (appendonly=no, save=''): a Redis restart LOSES every consent "
            "record. Set 'appendonly yes' and 'appendfsync always' (or everysec) before production.",
            where,
        )
    elif not aof:
        logger.warning(
            "Redis at %s persists by RDB snapshots only: a crash loses the consent records since the last "
            "snapshot. Set 'appendonly yes' for consent proof.",
            where,
        )
    elif config.get("appendfsync") != "always":
        logger.info(
            "Redis AOF with appendfsync=%s: up to a second of consent records can be lost on a power cut",
            config.get("appendfsync"),
        )
