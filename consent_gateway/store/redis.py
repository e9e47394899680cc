"""The shared consent log on Redis: several gateway instances, one log.

Key layout (every key carries the hash tag ``{prefix}``, so on Redis Cluster — ``redis+cluster://`` — they
share one slot and the scripts and MULTI/EXEC pipelines run there unchanged; every key a script touches is
passed in ``KEYS``)::

    {cg}:ev                 HASH  event_id → event JSON
    {cg}:t                  ZSET  "<ts ms, 13 digits>:<event_id>" (score 0, ordered by member) — time index
    {cg}:c:<consent_id>     ZSET  same members, one consent id — history and erasure
    {cg}:chain:<instance>   ZSET  event_id scored by seq — one hash chain per writer
    {cg}:chains             SET   instance ids
    {cg}:anchors            HASH  instance → {"seq", "hash", "purged_at_ms"} where a purged chain starts
    {cg}:erasures           HASH  consent_id → when it was erased (late events of it are stored erased)
    {cg}:agg:<day>:<dim>    HASH  the dashboard's counters of one UTC day (store/aggregates.py; fields in
                                  redis_layout.py); ``<dim>`` ``n`` holds events and visitors
    {cg}:aggdays            ZSET  days with counters (lexicographic), a month's first day for its per-visitor ones
    {cg}:x:<filter>:<value> ZSET  the time members of the events with that country, browser, policy version,
                                  action, device type or granted category (redis_layout.INDEXED_FILTERS)
    {cg}:indexed            STRING the filter indexes' version once they hold every stored event
    {cg}:counted            STRING set once the counters hold every stored event
    {cg}:vcounted           STRING set once the per-visitor counters (dims ``visitor-day``, ``visitor-month``)
                                  hold every stored event
    {cg}:once:<key>         STRING single-use keys (sync tokens), expiring on their own (SET NX PX)
    {cg}:users              HASH  HMAC of a user id → {"consent_id", "value", "at"}: the user's latest choice
    {cg}:state:<name>       STRING  a lease holder or shared state (store/coordination.py), with a TTL
    {cg}:inv:<kind>         HASH  the inventory of what the site uses: entry key → JSON (redis_inventory.py)
    {cg}:doc:<name>         HASH  "v" → version, "body" → text: a document every instance reads (the
                                  classification overlay), written by compare-and-set

Appends are one Lua script per batch: atomic, and idempotent by event id (``HSETNX``; the indexes are
written only for a new event), so a replayed spool never doubles anything. Lexicographic members make
cursor pagination exact even when events share a millisecond.

Redis is only as durable as its persistence: ``open`` reads ``CONFIG GET appendonly/appendfsync/save``
and logs a loud warning when a restart would lose consent records.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import (
    ChainHead,
    ConsentEvent,
    LogKeys,
    anchor_text,
    erase_personal,
    event_to_dict,
)
from consent_gateway.inventory.records import InventoryEntry, InventoryPage, InventoryQuery, InventorySize
from consent_gateway.store import aggregates, redis_inventory
from consent_gateway.store.aggregates import day_of, profile_of
from consent_gateway.store.base import (
    STAT_GROUPS,
    Checkpoint,
    DayCount,
    EventFilter,
    EventPage,
    PurgeResult,
    SendAppend,
    StatRow,
    StoredDocument,
    VerifyResult,
    day_counts_of,
    decode_cursor,
    encode_cursor,
    stats_of,
)
from consent_gateway.store.redis_layout import (
    APPEND_LUA,
    INCR_LUA,
    INDEX_VERSION,
    INDEXED_FILTERS,
    LEASE_LUA,
    PURGE_LUA,
    RELEASE_LUA,
    SCAN_CHUNK,
    US,
    BatchKeys,
    choices_of,
    day_lex_bounds,
    dump_bytes,
    dumps,
    event_cells,
    filter_index_values,
    increments_of,
    index_values,
    load_events,
    periods_of,
    read_counter_hash,
    split_url,
    time_bound,
    time_member,
    visitor_periods,
    warn_if_not_durable,
)
from consent_gateway.store.redis_verify import read_anchors, verify_chains

logger = logging.getLogger("consent_gateway.store.redis")

#: keeps a user's latest choice: an older one arriving late does not replace a newer one
_REMEMBER_USER_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and cjson.decode(old)['at'] > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
#: writes a document only if its version is still the one the writer read: 1 when written, 0 when not
_DOCUMENT_PUT_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', current + 1, 'body', ARGV[2])
return 1
"""
#: filter index name → the ``EventFilter`` field that selects on it
_FILTER_FIELDS = {name: name for name in INDEXED_FILTERS}
#: What a lost or refusing Redis raises (the Cluster client's start-up errors derive from none of the others).
REDIS_ERRORS = (RedisError, RedisClusterException, OSError)


async def _nothing() -> None:
    """The append of no events."""


class RedisConsentLog:
    """:class:`~consent_gateway.store.ConsentLog` on Redis, standalone or Cluster (``redis+cluster://``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        socket_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        log_keys: LogKeys | None = None,
    ) -> None:
        self.url = url
        #: verifies event and anchor MACs; purge anchors are written with the first key
        self.log_keys = log_keys
        self._client_url, url_prefix, self.cluster = split_url(url)
        self.prefix = prefix or url_prefix
        tag = "{" + self.prefix + "}"
        self._tag = f"{tag}:"
        self._k_ev = f"{tag}:ev"
        self._k_time = f"{tag}:t"
        self._k_chains = f"{tag}:chains"
        self._k_anchors = f"{tag}:anchors"
        self._k_erasures = f"{tag}:erasures"
        self._k_users = f"{tag}:users"
        #: banner version → what it showed (JSON), first archive wins
        self._k_banners = f"{tag}:banners"
        self._k_consent = f"{tag}:c:"
        self._k_chain = f"{tag}:chain:"
        self._k_state = f"{tag}:state:"
        self._k_doc = f"{tag}:doc:"
        self._k_aggdays = f"{tag}:aggdays"
        #: set once the counters hold every stored event (a log written before them is counted on open)
        self._k_counted = f"{tag}:counted"
        self._counted = False
        #: the same for the per-visitor counters (added later: a log written before them is counted on open)
        self._k_vcounted = f"{tag}:vcounted"
        self._vcounted = False
        #: filter indexes, ``{cg}:x:<filter>:<value>`` (redis_layout.INDEXED_FILTERS)
        self._k_index = f"{tag}:x:"
        #: set once the filter indexes hold every stored event (a log written before them is indexed on open)
        self._k_indexed = f"{tag}:indexed"
        self._indexed = False
        self._socket_timeout_s = socket_timeout_s
        self._connect_timeout_s = connect_timeout_s
        # Any: redis-py types every reply as bytes | str | list…, whatever decode_responses says.
        self._client: Any = None
        self._append_script: Any = None
        self._lease_script: Any = None
        self._release_script: Any = None
        self._incr_script: Any = None
        self._purge_script: Any = None
        self._inventory_script: Any = None
        self._inventory_prune_script: Any = None
        self._document_put_script: Any = None
        self.persistence: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StoreUnavailable(f"{self._safe_url()}: log not opened")
        return self._client

    async def open(self) -> None:
        if self._client is not None and self.persistence:
            return
        self._client = self._client or self._new_client()
        self._append_script = self._client.register_script(APPEND_LUA)
        self._lease_script = self._client.register_script(LEASE_LUA)
        self._release_script = self._client.register_script(RELEASE_LUA)
        self._incr_script = self._client.register_script(INCR_LUA)
        self._purge_script = self._client.register_script(PURGE_LUA)
        self._inventory_script = self._client.register_script(redis_inventory.MERGE_LUA)
        self._inventory_prune_script = self._client.register_script(redis_inventory.PRUNE_LUA)
        self._document_put_script = self._client.register_script(_DOCUMENT_PUT_LUA)
        self._time_script = self._client.register_script("return redis.call('TIME')")
        try:
            await self._client.ping()
            await self._check_persistence()
            await self._count_existing_events()
            await self._count_existing_visitors()
            await self._index_existing_events()
        except REDIS_ERRORS as exc:
            # The client stays: it reconnects by itself, so a gateway started while Redis is down spools
            # its events and the recorder replays them once Redis answers.
            raise StoreUnavailable(f"redis at {self._safe_url()} unreachable: {exc}", original_error=exc) from exc

    def _new_client(self) -> Any:
        if self.cluster:
            # Every key of the log carries one hash tag, so the whole log lives in one slot: scripts and
            # MULTI/EXEC pipelines run on that slot's master, as on a single Redis.
            return RedisCluster.from_url(
                self._client_url,
                decode_responses=True,
                socket_timeout=self._socket_timeout_s,
                socket_connect_timeout=self._connect_timeout_s,
            )
        return aioredis.Redis.from_url(
            self._client_url,
            decode_responses=True,
            socket_timeout=self._socket_timeout_s,
            socket_connect_timeout=self._connect_timeout_s,
            health_check_interval=30,
        )

    def _safe_url(self) -> str:
        parts = urlsplit(self._client_url)
        host = parts.hostname or ""
        scheme = parts.scheme + ("+cluster" if self.cluster else "")
        return f"{scheme}://{host}:{parts.port or 6379}{parts.path}"

    async def _check_persistence(self) -> None:
        try:
            config: dict[str, str] = {}
            for key in ("appendonly", "appendfsync", "save"):
                config.update(await self.client.config_get(key))
        except ResponseError as exc:  # CONFIG disabled (managed Redis): say we could not check
            logger.warning("could not check Redis persistence (%s); make sure AOF or RDB is on", exc)
            return
        self.persistence = config
        warn_if_not_durable(config, self._safe_url())

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except REDIS_ERRORS:
                logger.debug("error while closing the Redis connection", exc_info=True)

    def _unavailable(self, operation: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"redis {operation} failed: {exc}", original_error=exc)

    async def _load(self, event_ids: Sequence[str]) -> list[ConsentEvent | None]:
        return await load_events(self.client, self._k_ev, event_ids)

    # -- writing ----------------------------------------------------------------------------------------

    def _counter_key(self, day: str, dim: str) -> str:
        return f"{self._tag}agg:{day}:{dim}"

    def _consent_key(self, consent_id: str) -> str:
        return self._k_consent + consent_id

    def _index_key(self, name: str, value: str) -> str:
        return f"{self._k_index}{name}:{value}"

    async def append(self, events: Sequence[ConsentEvent]) -> None:
        await self.prepare_append(events)()

    def prepare_append(self, events: Sequence[ConsentEvent]) -> SendAppend:
        """The append of ``events`` with the script's arguments built now (``base.SendAppend``)."""
        if not events:
            return _nothing
        keys = BatchKeys([self._k_ev, self._k_time, self._k_chains, self._k_erasures, self._k_aggdays])
        profiles: dict[tuple[Any, ...], int] = {}
        increments: list[list[list[Any]]] = []
        days: dict[int, tuple[str, int]] = {}
        #: filter index values → their keys: events share them, so each batch names each key once
        index_keys: dict[tuple[Any, ...], list[int]] = {}
        rows: list[list[Any]] = []
        bodies: list[bytes] = []
        vkeys, months, periods = visitor_periods(events, self._consent_key, self._counter_key, keys)
        for e in events:
            body = dump_bytes(e)  # a dataclass: the bytes of event_to_dict's, without the dict
            bodies.append(body)
            profile = profile_of(e)
            index = profiles.get(profile)
            if index is None:
                index = profiles[profile] = len(increments) + 1
                increments.append(increments_of(event_cells(e), self._counter_key, keys))
            values = index_values(e)
            filter_keys = index_keys.get(values)
            if filter_keys is None:
                filter_keys = index_keys[values] = [keys(self._index_key(name, value)) for name, value in values]
            day = days.get(profile[0])
            if day is None:
                name = day_of(e.timestamp_ms)
                day = days[profile[0]] = (name, keys(self._counter_key(name, "n")))
            rows.append(
                [
                    e.event_id,
                    time_member(e.timestamp_ms, e.event_id),
                    e.consent_id,
                    keys(self._k_consent + e.consent_id),
                    e.instance_id,
                    keys(self._k_chain + e.instance_id),
                    e.seq,
                    len(body),
                    e.timestamp_ms,
                    index,
                    day[1],
                    day[0],
                    filter_keys,
                    choices_of(e),
                    periods_of(e, periods),
                ]
            )
        args = [dumps(rows), b"".join(bodies), dumps(increments), dumps(vkeys), dumps(months)]

        async def send() -> None:
            try:
                await self._append_script(keys=keys.keys, args=args)
            except REDIS_ERRORS as exc:
                raise self._unavailable("append", exc) from exc

        return send

    async def _rewrite(self, events: Sequence[ConsentEvent]) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            for e in events:
                pipe.hset(self._k_ev, e.event_id, dumps(event_to_dict(e)))
            await pipe.execute()

    async def erase(self, consent_id: str) -> int:
        now_ms = int(time.time() * 1000)
        try:
            # Remembered first, so events of this consent id still in a spool are erased on arrival.
            await self.client.hset(self._k_erasures, consent_id, now_ms)
            events = [e for e in await self.history(consent_id) if e.erased_at_ms is None]
            await self._rewrite([erase_personal(e, now_ms=now_ms) for e in events])
        except REDIS_ERRORS as exc:
            raise self._unavailable("erase", exc) from exc
        await self._rewrite_append_only_file()
        return len(events)

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        try:
            claimed = await self.client.set(f"{self._tag}once:{key}", b"1", nx=True, px=max(1, int(ttl_seconds * 1000)))
        except REDIS_ERRORS as exc:
            raise self._unavailable("claim", exc) from exc
        return bool(claimed)

    async def user_choice(self, user_key: str) -> tuple[str, str] | None:
        try:
            raw = await self.client.hget(self._k_users, user_key)
        except (RedisError, OSError) as exc:
            raise self._unavailable("user_choice", exc) from exc
        if raw is None:
            return None
        found = json.loads(raw)
        return str(found["consent_id"]), str(found["value"])

    async def remember_user_choice(self, user_key: str, consent_id: str, value: str, at_ms: int) -> None:
        entry = json.dumps({"consent_id": consent_id, "value": value, "at": at_ms})
        try:
            await self.client.eval(_REMEMBER_USER_LUA, 1, self._k_users, user_key, entry, at_ms)
        except (RedisError, OSError) as exc:
            raise self._unavailable("remember_user_choice", exc) from exc

    async def _rewrite_append_only_file(self) -> None:
        """The AOF still holds the erased values until Redis rewrites it: ask for that now (BGREWRITEAOF).

        RDB snapshots, replicas' files and backups keep them until they are replaced (see the README)."""
        if self.persistence.get("appendonly") != "yes":
            return
        try:
            if self.cluster:  # a command without a key: each primary rewrites its own file
                await self.client.bgrewriteaof(target_nodes=RedisCluster.PRIMARIES)
            else:
                await self.client.bgrewriteaof()
        except ResponseError as exc:  # one already running, or CONFIG/BGREWRITEAOF disabled (managed Redis)
            logger.warning("after an erasure, BGREWRITEAOF was refused (%s): run it once the current one ends", exc)
        except REDIS_ERRORS as exc:
            logger.warning("after an erasure, BGREWRITEAOF failed: %s", exc)

    async def purge(self, *, events_before_ms: int, ip_before_ms: int) -> PurgeResult:
        now_ms = int(time.time() * 1000)
        deleted = 0
        ips = 0
        try:
            for instance in sorted(await self.client.smembers(self._k_chains)):
                deleted += await self._purge_chain(instance, events_before_ms, now_ms)
            start = "-"
            while True:
                members = await self.client.zrange(
                    self._k_time, start, time_bound(ip_before_ms, low=False), bylex=True, offset=0, num=SCAN_CHUNK
                )
                if not members:
                    break
                start = "(" + members[-1]
                events = await self._load([m.split(":", 1)[1] for m in members])
                stale = [
                    erase_personal(e, fields=("ip",), now_ms=now_ms)
                    for e in events
                    if e is not None and e.ip is not None
                ]
                if stale:
                    await self._rewrite(stale)
                    ips += len(stale)
        except REDIS_ERRORS as exc:
            raise self._unavailable("purge", exc) from exc
        return PurgeResult(events_deleted=deleted, ips_removed=ips)

    async def _purge_chain(self, instance: str, before_ms: int, now_ms: int) -> int:
        """Delete the chain's prefix older than ``before_ms`` (the chain stays contiguous) and anchor it."""
        chain_key = self._k_chain + instance
        deleted = 0
        while True:
            ids = await self.client.zrange(chain_key, 0, SCAN_CHUNK - 1)
            if not ids:
                break
            events = await self._load(ids)
            old: list[ConsentEvent] = []
            for e in events:
                if e is None or e.timestamp_ms >= before_ms:
                    break
                old.append(e)
            if not old:
                break
            last = old[-1]
            head = ChainHead(seq=last.seq, hash=last.hash)
            mac = self.log_keys.mac(anchor_text(instance, head)) if self.log_keys is not None else ""
            anchor = {"seq": last.seq, "hash": last.hash, "purged_at_ms": now_ms, "mac": mac}
            keys = BatchKeys([self._k_ev, self._k_time, self._k_anchors, chain_key])
            profiles: dict[tuple[Any, ...], int] = {}
            increments: list[list[list[Any]]] = []
            rows: list[list[Any]] = []
            for e in old:
                profile = profile_of(e)
                index = profiles.get(profile)
                if index is None:
                    index = profiles[profile] = len(increments) + 1
                    increments.append(increments_of(event_cells(e), self._counter_key, keys))
                day = day_of(e.timestamp_ms)
                rows.append(
                    [
                        e.event_id,
                        time_member(e.timestamp_ms, e.event_id),
                        keys(self._k_consent + e.consent_id),
                        index,
                        *day_lex_bounds(day),
                        keys(self._counter_key(day, "n")),
                        [keys(self._index_key(name, value)) for name, value in index_values(e)],
                    ]
                )
            vkeys, _, _ = visitor_periods(old, self._consent_key, self._counter_key, keys)
            await self._purge_script(
                keys=keys.keys, args=[dumps(rows), dumps(increments), instance, dumps(anchor), dumps(vkeys)]
            )
            deleted += len(old)
            if len(old) < len(ids):
                break
        return deleted

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, event_id: str) -> ConsentEvent | None:
        try:
            return (await self._load([event_id]))[0]
        except REDIS_ERRORS as exc:
            raise self._unavailable("get", exc) from exc

    async def history(self, consent_id: str) -> list[ConsentEvent]:
        try:
            members = await self.client.zrange(self._k_consent + consent_id, 0, -1)
            return [e for e in await self._load([m.split(":", 1)[1] for m in members]) if e is not None]
        except REDIS_ERRORS as exc:
            raise self._unavailable("history", exc) from exc

    async def _scan(
        self, filters: EventFilter, *, descending: bool, after: str | None = None
    ) -> AsyncIterator[ConsentEvent]:
        """Selected events in time order; ``after`` is the time member to continue strictly beyond."""
        async for members in self._member_chunks(filters, descending=descending, after=after):
            for event in await self._load([m.split(":", 1)[1] for m in members]):
                if event is not None and filters.matches(event):
                    yield event

    async def _member_chunks(
        self, filters: EventFilter, *, descending: bool, after: str | None = None
    ) -> AsyncIterator[list[str]]:
        """Time members of the candidates for ``filters``, in chunks, in time order: the narrowest index's
        members over the time range, less those missing from any other index the filters name (ZMSCORE,
        nothing loaded). Every selected event is among them; other filters are left to the caller."""
        low = time_bound(filters.since_ms, low=True)
        high = time_bound(filters.until_ms, low=False)
        key, others = await self._narrowest_index(filters, low, high)
        while True:
            if descending:
                start = high if after is None else "(" + after
                members = await self.client.zrange(key, start, low, desc=True, bylex=True, offset=0, num=SCAN_CHUNK)
            else:
                start = low if after is None else "(" + after
                members = await self.client.zrange(key, start, high, bylex=True, offset=0, num=SCAN_CHUNK)
            if not members:
                return
            after = members[-1]
            complete = len(members) < SCAN_CHUNK
            if others:
                async with self.client.pipeline(transaction=False) as pipe:
                    for other in others:
                        pipe.zmscore(other, members)
                    scores = await pipe.execute()
                members = [m for m, *found in zip(members, *scores, strict=True) if None not in found]
            if members:
                yield members
            if complete:
                return

    async def _narrowest_index(self, filters: EventFilter, low: str, high: str) -> tuple[str, list[str]]:
        """The time-ordered index holding the fewest candidates for ``filters`` over ``[low, high]`` (the
        consent id's, else the smallest of its filter indexes by ZLEXCOUNT, else every event's), and the
        other filter indexes each selected event is in too."""
        candidates = [self._index_key(name, value) for name, value in filter_index_values(filters)]
        if not self._indexed:
            candidates = []
        if filters.consent_id is not None:
            return self._k_consent + filters.consent_id, candidates
        if not candidates:
            return self._k_time, []
        if len(candidates) > 1:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in candidates:
                    pipe.zlexcount(key, low, high)
                sizes = await pipe.execute()
            candidates = [key for _, key in sorted(zip(sizes, candidates, strict=True))]
        return candidates[0], candidates[1:]

    async def query(self, filters: EventFilter, *, limit: int = 50, cursor: str | None = None) -> EventPage:
        after = None
        if cursor is not None:
            ts, event_id = decode_cursor(cursor)
            after = time_member(ts, event_id)
        events: list[ConsentEvent] = []
        try:
            async for event in self._scan(filters, descending=True, after=after):
                events.append(event)
                if len(events) > limit:
                    break
        except REDIS_ERRORS as exc:
            raise self._unavailable("query", exc) from exc
        if len(events) > limit:
            last = events[limit - 1]
            return EventPage(events[:limit], encode_cursor(last.timestamp_ms, last.event_id))
        return EventPage(events, None)

    async def count(self, filters: EventFilter) -> int:
        try:
            if filters == EventFilter():
                return int(await self.client.hlen(self._k_ev))
            days = aggregates.whole_days(filters) if self._counted else None
            if days is not None:
                return sum(c.events for c in await self._daily_counters(days))
            cells = aggregates.granted_cells(filters) if self._counted else None
            if cells is not None:
                return await self._granted_count(cells)
            indexed = filter_index_values(filters)
            only_indexed = EventFilter(
                since_ms=filters.since_ms,
                until_ms=filters.until_ms,
                **{_FILTER_FIELDS[name]: value for name, value in indexed},
            )
            if self._indexed and indexed and filters == only_indexed:  # the indexes alone answer
                if len(indexed) == 1:
                    low = time_bound(filters.since_ms, low=True)
                    high = time_bound(filters.until_ms, low=False)
                    return int(await self.client.zlexcount(self._index_key(*indexed[0]), low, high))
                return sum([len(chunk) async for chunk in self._member_chunks(filters, descending=False)])
            return sum([1 async for _ in self._scan(filters, descending=False)])
        except REDIS_ERRORS as exc:
            raise self._unavailable("count", exc) from exc

    async def stats(self, filters: EventFilter, *, by: str) -> list[StatRow]:
        if by not in STAT_GROUPS:
            raise ValueError(f"stats by {by!r}: expected one of {', '.join(STAT_GROUPS)}")
        try:
            days = aggregates.whole_days(filters) if self._counted else None
            if days is not None:
                cells: list[tuple[str, str, int, int]] = []
                for _, raw in await self._counter_hashes(days, by):
                    cells.extend(read_counter_hash(raw))
                return aggregates.stat_rows(cells)
            return stats_of([e async for e in self._scan(filters, descending=False)], by)
        except REDIS_ERRORS as exc:
            raise self._unavailable("stats", exc) from exc

    async def daily_counts(self, filters: EventFilter) -> list[DayCount]:
        try:
            days = aggregates.whole_days(filters) if self._counted else None
            if days is not None:
                return await self._daily_counters(days)
            return day_counts_of([e async for e in self._scan(filters, descending=False)])
        except REDIS_ERRORS as exc:
            raise self._unavailable("daily_counts", exc) from exc

    async def visitor_stats(self, filters: EventFilter, *, period: str) -> list[StatRow]:
        try:
            days = aggregates.whole_periods(filters, period)
            if days is not None and self._vcounted:
                cells: list[tuple[str, str, int, int]] = []
                for _, raw in await self._counter_hashes(days, aggregates.PERIOD_DIMS[period]):
                    cells.extend(read_counter_hash(raw))
                return aggregates.stat_rows(cells)
            return aggregates.visitor_stats_of([e async for e in self._scan(filters, descending=False)], period)
        except REDIS_ERRORS as exc:
            raise self._unavailable("visitor_stats", exc) from exc

    async def _counter_days(self, days: tuple[str | None, str | None]) -> list[str]:
        """The days with counters in ``days``, oldest first."""
        low = "-" if days[0] is None else "[" + days[0]
        high = "+" if days[1] is None else "(" + days[1]
        return list(await self.client.zrange(self._k_aggdays, low, high, bylex=True))

    async def _granted_count(self, cells: aggregates.GrantedCells) -> int:
        """The sum of one granted counter field over days (``aggregates.granted_cells``), one HGET a day."""
        days, dim, value, category = cells
        names = await self._counter_days(days)
        if not names:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for day in names:
                pipe.hget(self._counter_key(day, dim), f"g{US}{day if value is None else value}{US}{category}")
            return sum(int(n or 0) for n in await pipe.execute())

    async def _counter_hashes(self, days: tuple[str | None, str | None], dim: str) -> list[tuple[str, dict[str, str]]]:
        """``(day, hash)`` of one dimension's counters for each day with counters in ``days``, oldest first."""
        names = await self._counter_days(days)
        if not names:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for day in names:
                pipe.hgetall(self._counter_key(day, dim))
            return list(zip(names, await pipe.execute(), strict=True))

    async def _daily_counters(self, days: tuple[str | None, str | None]) -> list[DayCount]:
        counts = [
            DayCount(day, int(raw.get("events", 0)), int(raw.get("visitors", 0)))
            for day, raw in await self._counter_hashes(days, "n")
        ]
        return [c for c in counts if c.events > 0]

    async def _count_existing_events(self) -> None:
        """Mark the counters complete; a log written before them (an upgrade) is counted first, once."""
        if await self.client.exists(self._k_counted):
            self._counted = True
            return
        if int(await self.client.hlen(self._k_ev)) == 0:
            await self.client.set(self._k_counted, "1")
            self._counted = True
            return
        logger.warning("counting the events of %s for the dashboard's counters (once, after an upgrade)", self.prefix)
        cells = aggregates.Cells()
        visitor_days: set[tuple[str, str]] = set()
        async for e in self._scan(EventFilter(), descending=False):
            cells.add_event(e)
            visitor_days.add((day_of(e.timestamp_ms), e.consent_id))
        for day, _ in visitor_days:
            cells.cells.setdefault((day, aggregates.VISITORS, "", ""), [0, 0])[0] += 1
        async with self.client.pipeline(transaction=True) as pipe:
            for day, dim, value, category, total, granted in cells.rows():
                if dim in (aggregates.EVENTS, aggregates.VISITORS):
                    pipe.hset(self._counter_key(day, "n"), dim, total)
                    pipe.zadd(self._k_aggdays, {day: 0})
                    continue
                pipe.hset(self._counter_key(day, dim), f"t{US}{value}{US}{category}", total)
                if granted:
                    pipe.hset(self._counter_key(day, dim), f"g{US}{value}{US}{category}", granted)
            pipe.set(self._k_counted, "1")
            await pipe.execute()
        self._counted = True

    async def _count_existing_visitors(self) -> None:
        """Mark the per-visitor counters complete; a log written before them (an upgrade) is counted first, once.
        It counts from a scan: what other instances append meanwhile may be miscounted, so the README asks to
        open the upgraded log with one instance first, as for the other counters."""
        if await self.client.exists(self._k_vcounted):
            self._vcounted = True
            return
        if int(await self.client.hlen(self._k_ev)) > 0:
            logger.warning("counting the visitors of %s per day and month (once, after an upgrade)", self.prefix)
            await self.recount_visitors()
        await self.client.set(self._k_vcounted, "1")
        self._vcounted = True

    async def recount_visitors(self) -> None:
        """Write the per-visitor counters again from every stored event (a scan, for an upgrade), keeping only
        each (visitor, period)'s latest event in memory, as an append would count them chunk by chunk."""
        cells = aggregates.Cells()
        latest: dict[aggregates.VisitorKey, aggregates.Latest | None] = {}

        def count(chunk: list[ConsentEvent]) -> None:
            aggregates.add_visitor_moves(cells, chunk, latest)
            for e in chunk:
                for key in aggregates.period_keys(e):
                    seen = latest.get(key)
                    if seen is None or (seen[0], seen[1]) < (e.timestamp_ms, e.event_id):
                        latest[key] = (e.timestamp_ms, e.event_id, e.categories)
            chunk.clear()

        chunk: list[ConsentEvent] = []
        async for e in self._scan(EventFilter(), descending=False):
            chunk.append(e)
            if len(chunk) == SCAN_CHUNK:
                count(chunk)
        count(chunk)
        async with self.client.pipeline(transaction=True) as pipe:
            for dim in aggregates.PERIOD_DIMS.values():
                for day in await self.client.zrange(self._k_aggdays, 0, -1):
                    pipe.delete(self._counter_key(day, dim))
            for (first_day, dim, label, category), (total, granted) in cells.cells.items():
                if total:
                    key = self._counter_key(first_day, dim)
                    pipe.hset(key, f"t{US}{label}{US}{category}", total)
                    if granted:
                        pipe.hset(key, f"g{US}{label}{US}{category}", granted)
                    pipe.zadd(self._k_aggdays, {first_day: 0})
            await pipe.execute()

    async def _index_existing_events(self) -> None:
        """Mark the filter indexes complete; a log written before them, or before some of them (an upgrade),
        is indexed first, once (adding a member an index already holds changes nothing)."""
        if await self.client.get(self._k_indexed) == INDEX_VERSION:
            self._indexed = True
            return
        if int(await self.client.hlen(self._k_ev)) > 0:
            logger.warning("indexing the events of %s for filtered searches (once, after an upgrade)", self.prefix)
            after: str | None = None
            while True:
                members = await self.client.zrange(
                    self._k_time, "(" + after if after else "-", "+", bylex=True, offset=0, num=SCAN_CHUNK
                )
                if not members:
                    break
                after = members[-1]
                events = await self._load([m.split(":", 1)[1] for m in members])
                async with self.client.pipeline(transaction=False) as pipe:
                    for member, e in zip(members, events, strict=True):
                        for name, value in index_values(e) if e is not None else ():
                            pipe.zadd(self._index_key(name, value), {member: 0})
                    await pipe.execute()
        await self.client.set(self._k_indexed, INDEX_VERSION)
        self._indexed = True

    async def export(self, filters: EventFilter) -> AsyncIterator[ConsentEvent]:
        try:
            async for event in self._scan(filters, descending=False):
                yield event
        except REDIS_ERRORS as exc:
            raise self._unavailable("export", exc) from exc

    # -- integrity --------------------------------------------------------------------------------------

    async def chain_heads(self) -> dict[str, ChainHead]:
        try:
            heads = await read_anchors(self.client, self._k_anchors, self.log_keys)
            for instance in await self.client.smembers(self._k_chains):
                last = await self.client.zrange(self._k_chain + instance, -1, -1, withscores=True)
                if not last:
                    continue
                event = (await self._load([last[0][0]]))[0]
                if event is not None:
                    heads[instance] = ChainHead(seq=event.seq, hash=event.hash)
            return heads
        except REDIS_ERRORS as exc:
            raise self._unavailable("chain_heads", exc) from exc

    async def chain_anchors(self) -> dict[str, ChainHead]:
        try:
            return await read_anchors(self.client, self._k_anchors, self.log_keys)
        except REDIS_ERRORS as exc:
            raise self._unavailable("chain_anchors", exc) from exc

    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyResult:
        try:
            return await verify_chains(
                self.client,
                events_key=self._k_ev,
                chains_key=self._k_chains,
                chain_prefix=self._k_chain,
                anchors_key=self._k_anchors,
                log_keys=self.log_keys,
                checkpoint=checkpoint,
            )
        except REDIS_ERRORS as exc:
            raise self._unavailable("verify", exc) from exc

    async def server_time_ms(self) -> int | None:
        try:
            # through a script with a key, so a Cluster asks the node that holds this log's keys
            seconds, micros = await self._time_script(keys=[self._k_state + "clock"])
        except (RedisError, OSError) as exc:
            raise self._unavailable("server_time", exc) from exc
        return int(seconds) * 1000 + int(micros) // 1000

    async def write_probe(self) -> None:
        # a key that expires by itself: refused while Redis refuses writes (MISCONF after a failed save,
        # a read-only replica, maxmemory with noeviction)
        try:
            await self.client.set(f"{self._tag}probe", "1", ex=60)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis write probe failed: {exc}", original_error=exc) from exc

    async def health(self) -> dict[str, Any]:
        try:
            events = int(await self.client.hlen(self._k_ev))
        except (*REDIS_ERRORS, StoreUnavailable) as exc:
            return {"backend": "redis", "ok": False, "error": str(exc)}
        durable = self.persistence.get("appendonly") == "yes" or bool(self.persistence.get("save", "").strip())
        return {
            "backend": "redis",
            "ok": True,
            "events": events,
            "url": self._safe_url(),
            "prefix": self.prefix,
            "durable": durable,
        }

    # -- coordination between instances (store/coordination.py): Redis expires the keys itself ----------

    async def lease(self, name: str, holder: str, ttl_ms: int, *, take_from: str | None = None) -> str:
        try:
            found = await self._lease_script(keys=[self._k_state + name], args=[holder, ttl_ms, take_from or ""])
        except (RedisError, OSError) as exc:
            raise self._unavailable("lease", exc) from exc
        return str(found)

    async def release_lease(self, name: str, holder: str) -> None:
        try:
            await self._release_script(keys=[self._k_state + name], args=[holder])
        except (RedisError, OSError) as exc:
            raise self._unavailable("release_lease", exc) from exc

    async def archive_banner(self, version: str, document: str) -> bool:
        try:
            return bool(await self.client.hsetnx(self._k_banners, version, document))
        except (RedisError, OSError) as exc:
            raise self._unavailable("archive_banner", exc) from exc

    async def banner_versions(self, versions: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(versions))
        if not wanted:
            return {}
        try:
            values = await self.client.hmget(self._k_banners, wanted)
        except (RedisError, OSError) as exc:
            raise self._unavailable("banner_versions", exc) from exc
        return {v: d.decode() if isinstance(d, bytes) else str(d) for v, d in zip(wanted, values, strict=True) if d}

    async def state_get(self, names: Sequence[str]) -> dict[str, str]:
        wanted = list(names)
        if not wanted:
            return {}
        try:
            values = await self.client.mget([self._k_state + n for n in wanted])
        except (RedisError, OSError) as exc:
            raise self._unavailable("state_get", exc) from exc
        return {n: str(v) for n, v in zip(wanted, values, strict=True) if v is not None}

    async def state_put(self, name: str, value: str, ttl_ms: int) -> None:
        try:
            await self.client.set(self._k_state + name, value, px=max(1, ttl_ms))
        except (RedisError, OSError) as exc:
            raise self._unavailable("state_put", exc) from exc

    async def state_delete(self, names: Sequence[str]) -> None:
        wanted = list(names)
        if not wanted:
            return
        try:
            await self.client.delete(*[self._k_state + n for n in wanted])
        except (RedisError, OSError) as exc:
            raise self._unavailable("state_delete", exc) from exc

    async def state_incr(self, name: str, ttl_ms: int) -> int:
        try:
            return int(await self._incr_script(keys=[self._k_state + name], args=[max(1, ttl_ms)]))
        except (RedisError, OSError) as exc:
            raise self._unavailable("state_incr", exc) from exc

    # -- the inventory (inventory/records.py, store/redis_inventory.py) -----------------------------------

    async def merge_inventory(self, entries: Iterable[InventoryEntry]) -> None:
        try:
            await redis_inventory.merge(self.client, self._inventory_script, self._tag, entries)
        except REDIS_ERRORS as exc:
            raise self._unavailable("merge_inventory", exc) from exc

    async def read_inventory(self, query: InventoryQuery) -> InventoryPage:
        try:
            return await redis_inventory.read(self.client, self._tag, query)
        except REDIS_ERRORS as exc:
            raise self._unavailable("read_inventory", exc) from exc

    async def inventory_size(self) -> InventorySize:
        try:
            return await redis_inventory.size(self.client, self._tag)
        except REDIS_ERRORS as exc:
            raise self._unavailable("inventory_size", exc) from exc

    async def prune_inventory(self, *, seen_before_ms: int) -> int:
        try:
            return await redis_inventory.prune(self.client, self._inventory_prune_script, self._tag, seen_before_ms)
        except REDIS_ERRORS as exc:
            raise self._unavailable("prune_inventory", exc) from exc

    # -- shared documents (the classification overlay): one hash each, never expiring ------------------------

    async def document_get(self, name: str) -> StoredDocument | None:
        try:
            version, body = await self.client.hmget(self._k_doc + name, ["v", "body"])
        except (RedisError, OSError) as exc:
            raise self._unavailable("document_get", exc) from exc
        if version is None or body is None:
            return None
        return StoredDocument(int(version), body.decode() if isinstance(body, bytes) else str(body))

    async def document_version(self, name: str) -> int:
        try:
            version = await self.client.hget(self._k_doc + name, "v")
        except (RedisError, OSError) as exc:
            raise self._unavailable("document_version", exc) from exc
        return int(version) if version is not None else 0

    async def document_put(self, name: str, body: str, *, expected_version: int) -> bool:
        try:
            written = await self._document_put_script(keys=[self._k_doc + name], args=[expected_version, body])
        except (RedisError, OSError) as exc:
            raise self._unavailable("document_put", exc) from exc
        return int(written) == 1
