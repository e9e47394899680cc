"""The Redis backend's layout: key names, the append script, events read back, time members, persistence checks.

`redis.py` holds the operations; this module holds what they agree on, so the key layout in `redis.py`'s
docstring is written down in code once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from consent_gateway.errors import ConfigError
from consent_gateway.events import ConsentEvent, event_from_dict
from consent_gateway.store.aggregates import (
    DAY_MS,
    EVENTS,
    Cells,
    VisitorKey,
    day_bounds,
    period_keys,
    periods_of_day,
)
from consent_gateway.store.base import EventFilter

logger = logging.getLogger("consent_gateway.store.redis")

# Every key a script touches is passed in KEYS (Redis Cluster routes a script by its keys, and they all carry
# the log's hash tag, hence share one slot). The fixed keys come first; the keys of one batch (per-consent
# and per-chain indexes, counter hashes) follow, and the batch's rows name them by their index in KEYS.
#
# Counters (store/aggregates.py): a HASH per UTC day and dimension, ``{cg}:agg:<day>:<dim>``, fields
# ``t<US><value><US><category>`` (events with a choice) and ``g<US>…`` (of which granted); and
# ``{cg}:agg:<day>:n`` with fields ``events`` and ``visitors``; ``{cg}:aggdays`` is the ZSET of days with
# counters. A batch's events that share a profile (day, country, browser, device, policy, choices) share
# one list of increments: the script counts new events per profile, then adds each distinct field once.
_COUNTERS_LUA = """
local function add_profiles(profiles, used, sign, acc)
  for p, n in pairs(used) do
    for _, inc in ipairs(profiles[p]) do
      local key = inc[1]
      acc[key] = acc[key] or {}
      acc[key][inc[2]] = (acc[key][inc[2]] or 0) + sign * n * inc[3]
    end
  end
end
-- Per-visitor counters: vkeys is a list of [consent key, low lex bound, high lex bound, counter key, period
-- label, and for a day the index in vkeys of its month] (one per visitor and period a write touches, keys as
-- indexes into KEYS). latest_members returns each one's latest time member now (false when none): a month's
-- from the index, a day's from its month's where that settles it (the month's latest is before the day: none;
-- inside it: the same), so most days cost no lookup; move_visitors moves each visitor whose latest member
-- changed from the old one's choices to the new one's (choices of a member: from `known`, else its event).
local function latest_members(vkeys)
  local found = {}
  for i, v in ipairs(vkeys) do
    if not v[6] then
      found[i] = redis.call('ZREVRANGEBYLEX', KEYS[v[1]], v[3], v[2], 'LIMIT', 0, 1)[1] or false
    end
  end
  for i, v in ipairs(vkeys) do
    if v[6] then
      local month = found[v[6]]
      local t = month and string.sub(month, 1, 13)
      if not t or t < string.sub(v[2], 2) then
        found[i] = false
      elseif t < string.sub(v[3], 2) then
        found[i] = month
      else
        found[i] = redis.call('ZREVRANGEBYLEX', KEYS[v[1]], v[3], v[2], 'LIMIT', 0, 1)[1] or false
      end
    end
  end
  return found
end
local function choices_of(member, known)
  if known[member] then return known[member] end
  local body = redis.call('HGET', KEYS[1], string.sub(member, 15))
  local choices = {}
  -- only the event's flat "categories" object is decoded, not the whole event (a quote inside a JSON
  -- string is escaped, so the first match is the field itself)
  local categories = body and string.match(body, '"categories":(%b{})')
  if categories then
    for category, granted in pairs(cjson.decode(categories)) do
      choices[#choices + 1] = {category, granted and 1 or 0}
    end
  end
  known[member] = choices
  return choices
end
-- the counter fields of a period's label and a category, made once per script call
local field_names = {}
local function fields_of(label, category)
  local by_label = field_names[label]
  if not by_label then
    by_label = {}
    field_names[label] = by_label
  end
  local f = by_label[category]
  if not f then
    f = {'t\\31' .. label .. '\\31' .. category, 'g\\31' .. label .. '\\31' .. category}
    by_label[category] = f
  end
  return f
end
local function move_visitor(acc, v, choices, sign)
  acc[v[4]] = acc[v[4]] or {}
  local cells = acc[v[4]]
  for _, c in ipairs(choices) do
    local f = fields_of(v[5], c[1])
    cells[f[1]] = (cells[f[1]] or 0) + sign
    if c[2] == 1 then cells[f[2]] = (cells[f[2]] or 0) + sign end
  end
end
local function move_visitors(acc, vkeys, before, after, known)
  for i, v in ipairs(vkeys) do
    if before[i] ~= after[i] then
      if before[i] then move_visitor(acc, v, choices_of(before[i], known), -1) end
      if after[i] then move_visitor(acc, v, choices_of(after[i], known), 1) end
    end
  end
end
local function write_counters(acc)
  for key, fields in pairs(acc) do
    for field, n in pairs(fields) do
      if n ~= 0 and redis.call('HINCRBY', KEYS[key], field, n) == 0 then
        redis.call('HDEL', KEYS[key], field)
      end
    end
  end
end
"""

# KEYS: ev, t, chains, erasures, aggdays, then the batch's keys. ARGV[1]: a JSON array of rows
# [event_id, time member, consent_id, its index key, instance, its chain key, seq, byte length of the
# event's JSON, timestamp ms, profile, the day's counter key, the day, its filter index keys, its choices
# [[category, 1|0], …], its day's and month's indexes in ARGV[4]] (keys as indexes into KEYS); ARGV[2]: the
# events' JSON, concatenated; ARGV[3]: the profiles' increments, [[key, field, n], …] each; ARGV[4]: the
# batch's visitor periods (``vkeys`` above); ARGV[5]: the months' first days (per-visitor counters, in
# aggdays). A few arguments per batch, and no JSON escaped inside JSON: packing thousands of small
# arguments costs the client more than the script costs Redis.
# An event older than an erasure of its consent id (replayed late from a spool) is stored erased, as
# `events.erase_personal` does: personal fields and salts gone, commitments kept.
APPEND_LUA = (
    _COUNTERS_LUA
    + """
local batch = cjson.decode(ARGV[1])
local bodies = ARGV[2]
local profiles = cjson.decode(ARGV[3])
local vkeys = cjson.decode(ARGV[4])
local before = latest_members(vkeys)
local known = {}
-- per period of vkeys: the one member this batch added to it, or true when it added several
local added_to = {}
local any_erasure = redis.call('HLEN', KEYS[4]) > 0
local pos = 1
local added = 0
local used = {}
local acc = {}
local days = {}
local instances = {}
-- The time, filter and chain indexes are shared by the whole batch: their members are gathered and added
-- with one ZADD per key (500 members a call) instead of one call per event and key.
local zadds = {}
local function later(k, score, member)
  local members = zadds[k]
  if not members then members = {}; zadds[k] = members end
  members[#members + 1] = score
  members[#members + 1] = member
end
for i = 1, #batch do
  local e = batch[i]
  local id, member, consent_id, consent, instance = e[1], e[2], e[3], KEYS[e[4]], e[5]
  local body = string.sub(bodies, pos, pos + e[8] - 1)
  pos = pos + e[8]
  if any_erasure and redis.call('HEXISTS', KEYS[1], id) == 0 then
    local erased_at = tonumber(redis.call('HGET', KEYS[4], consent_id) or '')
    if erased_at and erased_at >= e[9] then
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
    -- a visitor-day opens with its first event: none stored before the batch (its latest before), none
    -- added earlier in the batch
    local visitor_day = e[15][1]
    if not before[visitor_day] and added_to[visitor_day] == nil then
      acc[e[11]] = acc[e[11]] or {}
      acc[e[11]]['visitors'] = (acc[e[11]]['visitors'] or 0) + 1
    end
    redis.call('ZADD', consent, 0, member)
    later(2, 0, member)
    for _, k in ipairs(e[13]) do later(k, 0, member) end
    later(e[6], e[7], id)
    instances[instance] = true
    used[e[10]] = (used[e[10]] or 0) + 1
    days[e[12]] = true
    known[member] = e[14]
    for _, v in ipairs(e[15]) do
      if added_to[v] == nil then added_to[v] = member else added_to[v] = true end
    end
    added = added + 1
  end
end
for k, members in pairs(zadds) do
  for first = 1, #members, 1000 do
    redis.call('ZADD', KEYS[k], unpack(members, first, math.min(first + 999, #members)))
  end
end
for name in pairs(instances) do redis.call('SADD', KEYS[3], name) end
if added > 0 then
  -- each period's latest member now: when the batch added one member to it, the later of that one and the
  -- period's latest before, by time (a tie, or several members, asks the index)
  local after = {}
  for i, v in ipairs(vkeys) do
    local got = added_to[i]
    if got == nil then
      after[i] = before[i]
    elseif got ~= true and not before[i] then
      after[i] = got
    else
      local t_old = before[i] and tonumber(string.sub(before[i], 1, 13))
      local t_new = got ~= true and tonumber(string.sub(got, 1, 13))
      if t_old and t_new and t_old ~= t_new then
        after[i] = t_new > t_old and got or before[i]
      else
        after[i] = redis.call('ZREVRANGEBYLEX', KEYS[v[1]], v[3], v[2], 'LIMIT', 0, 1)[1] or false
      end
    end
  end
  move_visitors(acc, vkeys, before, after, known)
  for _, day in ipairs(cjson.decode(ARGV[5])) do days[day] = true end
end
add_profiles(profiles, used, 1, acc)
write_counters(acc)
for day in pairs(days) do redis.call('ZADD', KEYS[5], 0, day) end
return added
"""
)

# KEYS: ev, t, anchors, the chain, then the chunk's keys. ARGV[1]: rows [event_id, time member, consent
# key, profile, day's low bound, day's high bound, day's counter key, filter index keys]; ARGV[2]: the
# profiles' increments; ARGV[3]: the instance; ARGV[4]: its new anchor's JSON; ARGV[5]: the chunk's visitor
# periods (``vkeys``). Deletes the chunk (a prefix of the chain), takes the deleted events from the counters
# (a visitor-day goes with its last event; a visitor's period counts its latest event left) and moves the
# anchor, at once.
PURGE_LUA = (
    _COUNTERS_LUA
    + """
local batch = cjson.decode(ARGV[1])
local profiles = cjson.decode(ARGV[2])
local vkeys = cjson.decode(ARGV[5])
local before = latest_members(vkeys)
local known = {}
for i = 1, #before do
  if before[i] then choices_of(before[i], known) end
end
local used = {}
local acc = {}
local pairs_seen = {}
local deleted = 0
for i = 1, #batch do
  local e = batch[i]
  if redis.call('HDEL', KEYS[1], e[1]) == 1 then
    redis.call('ZREM', KEYS[2], e[2])
    redis.call('ZREM', KEYS[e[3]], e[2])
    for _, k in ipairs(e[8]) do redis.call('ZREM', KEYS[k], e[2]) end
    redis.call('ZREM', KEYS[4], e[1])
    used[e[4]] = (used[e[4]] or 0) + 1
    pairs_seen[e[3] .. ' ' .. e[5]] = e
    deleted = deleted + 1
  end
end
for _, e in pairs(pairs_seen) do
  if #redis.call('ZRANGEBYLEX', KEYS[e[3]], e[5], e[6], 'LIMIT', 0, 1) == 0 then
    acc[e[7]] = acc[e[7]] or {}
    acc[e[7]]['visitors'] = (acc[e[7]]['visitors'] or 0) - 1
  end
end
move_visitors(acc, vkeys, before, latest_members(vkeys), known)
add_profiles(profiles, used, -1, acc)
write_counters(acc)
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return deleted
"""
)

# Filter indexes: ``{cg}:x:<filter>:<value>``, a ZSET of the time members (as ``{cg}:t``) of the events with
# that value, added by the append script and removed by the purge script, so a filtered search or count
# walks the events of its value instead of every event of its time range. Every filter but the consent id
# (``{cg}:c:<id>`` serves it) and the IP (a personal field, erased in place) has one; an event is in a
# category's index when it granted that category, which is what the filter selects. Action and device type
# have a handful of values each, but without their own index a count of one of them over a year loaded
# every event of the year, and a search for a rare one (a withdrawal, an objection) walked them all.
INDEXED_FILTERS = ("country", "browser", "policy_version", "action", "device", "category")
#: What ``{cg}:indexed`` holds once every stored event is in each filter index of this version; a log indexed
#: by an older version (without the action, device and category indexes: "1") is indexed again once on open.
INDEX_VERSION = "2"


def index_values(event: ConsentEvent) -> tuple[tuple[str, str], ...]:
    """``(filter, value)`` of each filter index that holds ``event``."""
    pairs = (
        ("country", event.country),
        ("browser", event.browser_family),
        ("policy_version", event.policy_version),
        ("action", event.action),
        ("device", event.device_type),
    )
    found = [(name, value) for name, value in pairs if value is not None]
    found += [("category", category) for category, granted in event.categories.items() if granted is True]
    return tuple(found)


def filter_index_values(filters: EventFilter) -> list[tuple[str, str]]:
    """``(filter, value)`` of each filter index ``filters`` selects on (every event it selects is in each)."""
    pairs = (
        ("country", filters.country),
        ("browser", filters.browser),
        ("policy_version", filters.policy_version),
        ("action", filters.action),
        ("device", filters.device),
        ("category", filters.category),
    )
    return [(name, value) for name, value in pairs if value is not None]


#: Field separator inside a counter hash (never in a country, browser, policy, category or vendor id).
US = "\x1f"


class BatchKeys:
    """The KEYS of one script call: fixed keys first, then each other key once, named by its 1-based index."""

    def __init__(self, fixed: Sequence[str]) -> None:
        self.keys = list(fixed)
        self._index = {k: i + 1 for i, k in enumerate(self.keys)}

    def __call__(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index


def increments_of(cells: Cells, counter_key: Callable[[str, str], str], keys: BatchKeys) -> list[list[Any]]:
    """Counter cells as script increments ``[key index, field, n]``."""
    increments: list[list[Any]] = []
    for (day, dim, value, category), (total, granted) in cells.cells.items():
        if dim == EVENTS:
            increments.append([keys(counter_key(day, "n")), "events", total])
            continue
        key = keys(counter_key(day, dim))
        if total:
            increments.append([key, f"t{US}{value}{US}{category}", total])
        if granted:
            increments.append([key, f"g{US}{value}{US}{category}", granted])
    return increments


def visitor_periods(
    events: Sequence[ConsentEvent],
    consent_key: Callable[[str], str],
    counter_key: Callable[[str, str], str],
    keys: BatchKeys,
) -> tuple[list[list[Any]], list[str], dict[VisitorKey, int]]:
    """The scripts' ``vkeys`` of ``events`` (each visitor's month, then day, which names its month's index), the
    months' first days, and each period's index in ``vkeys`` (from 1, as Lua counts)."""
    vkeys: list[list[Any]] = []
    months: set[str] = set()
    index: dict[VisitorKey, int] = {}
    #: day number → the bounds and counter keys of its day and month (a batch's events share a few days)
    days: dict[int, tuple[list[Any], list[Any]]] = {}
    for e in events:
        n = e.timestamp_ms // DAY_MS
        shapes = days.get(n)
        if shapes is None:
            shapes = days[n] = _period_shapes(n, counter_key, keys)
            months.add(periods_of_day(n)[1][1])
        day, month = period_keys(e)
        if day in index:
            continue
        consent = keys(consent_key(e.consent_id))
        m = index.get(month)
        if m is None:
            vkeys.append([consent, *shapes[1]])
            m = index[month] = len(vkeys)
        vkeys.append([consent, *shapes[0], m])
        index[day] = len(vkeys)
    return vkeys, sorted(months), index


def _period_shapes(n: int, counter_key: Callable[[str, str], str], keys: BatchKeys) -> tuple[list[Any], list[Any]]:
    """``[low, high, counter key, label]`` of UTC day number ``n`` and of its month, as ``vkeys`` rows hold them."""
    shapes = []
    for dim, period, label, start, end in periods_of_day(n):
        shapes.append(
            [time_bound(start, low=True), time_bound(end, low=False), keys(counter_key(period, dim)), label]
        )
    return shapes[0], shapes[1]


def periods_of(event: ConsentEvent, index: dict[VisitorKey, int]) -> list[int]:
    """An event's day and month as indexes into the scripts' ``vkeys``."""
    day, month = period_keys(event)
    return [index[day], index[month]]


def choices_of(event: ConsentEvent) -> list[list[Any]]:
    """An event's choices as the scripts read them: ``[[category, 1 | 0], …]``."""
    return [[category, 1 if granted else 0] for category, granted in event.categories.items()]


def event_cells(event: ConsentEvent) -> Cells:
    cells = Cells()
    cells.add_event(event)
    return cells


def day_lex_bounds(day: str) -> tuple[str, str]:
    """Lex bounds of a UTC day's time members: ``[low``, ``(high``."""
    low, high = day_bounds(day)
    return time_bound(low, low=True), time_bound(high, low=False)


def read_counter_hash(raw: dict[str, str]) -> Iterator[tuple[str, str, int, int]]:
    """A ``{cg}:agg:<day>:<dim>`` hash → ``(value, category, total, granted)``."""
    cells: dict[tuple[str, str], list[int]] = {}
    for field, n in raw.items():
        kind, value, category = field.split(US, 2)
        cells.setdefault((value, category), [0, 0])[0 if kind == "t" else 1] += int(n)
    for (value, category), (total, granted) in cells.items():
        yield value, category, total, granted


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


#: URL schemes of a Redis Cluster: the seed node's address; the client learns the other nodes from it.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def split_url(url: str) -> tuple[str, str, bool]:
    """The client URL without our ``prefix`` query parameter, the prefix (default ``cg``), and whether the
    URL names a Redis Cluster (``redis+cluster://host:port``, ``rediss+cluster://`` for TLS)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "cg")
    if not prefix or any(c in prefix for c in "{}*?[]"):
        raise ConfigError("store.url", f"prefix {prefix!r}: use letters, digits, '-' or '_' (it becomes a hash tag)")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    cluster = parts.scheme in CLUSTER_SCHEMES
    if cluster:
        if parts.path.strip("/") not in ("", "0"):
            raise ConfigError(
                "store.url", f"a Redis Cluster has only database 0, got {parts.path!r} in {parts.scheme}://"
            )
        if not parts.hostname:
            raise ConfigError("store.url", f"expected {parts.scheme}://host:port (one node of the cluster)")
        parts = parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme], path="")
    return urlunsplit(parts._replace(query=rest)), prefix, cluster


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
