"""One contract, every backend: ``ConsentLogContract`` runs against SQLite, a real Redis and a real PostgreSQL.

Each backend subclass adds only how to open the log and how an attacker with raw access would tamper
with it (edit, delete, insert, truncate).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent_gateway.errors import StoreUnavailable
from consent_gateway.events import (
    DATA_ERASED,
    PERSONAL_FIELDS,
    ChainHead,
    ConsentEvent,
    EventChain,
    LogKeys,
    event_to_dict,
)
from consent_gateway.store import STAT_GROUPS, Checkpoint, ConsentLog, EventFilter, aggregates, open_log
from consent_gateway.store.aggregates import day_bounds, day_of, visitor_stats_of
from consent_gateway.store.base import VISITOR_PERIODS, DayCount, day_counts_of, stats_of
from consent_gateway.store.redis import RedisConsentLog
from consent_gateway.store.sqlite import SQLiteConsentLog
from tests.store.conftest import BASE_MS, RedisProcess, make_event

DAY_MS = 86_400_000

#: One event of the counter property test: (day, ms within the day, visitor, country, browser, device,
#: policy, categories, vendors).
COUNTER_EVENT = st.tuples(
    st.integers(0, 6),
    st.sampled_from([0, 1, 3_600_000, DAY_MS - 1]),
    st.integers(0, 5),
    st.sampled_from(["FR", "DE", None]),
    st.sampled_from(["Chrome", "Firefox", None]),
    st.sampled_from(["desktop", "mobile"]),
    st.sampled_from(["2025-06", "2026-01"]),
    st.dictionaries(st.sampled_from(["analytics", "marketing", "social"]), st.booleans(), max_size=3),
    st.dictionaries(st.sampled_from(["youtube", "hotjar"]), st.booleans(), max_size=2),
)
COUNTER_STEPS = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["a", "b"]), st.lists(COUNTER_EVENT, min_size=1, max_size=12)),
    st.tuples(st.just("erase"), st.integers(0, 5)),
    st.tuples(st.just("purge"), st.integers(0, 7), st.sampled_from([0, 1, 7_200_000])),
)


def counter_event(
    day: int,
    ms: int,
    visitor: int,
    country: str | None,
    browser: str | None,
    device: str,
    policy: str,
    categories: dict[str, bool],
    vendors: dict[str, bool],
) -> ConsentEvent:
    return dataclasses.replace(
        make_event(visitor, consent_id=f"visitor-{visitor}", timestamp_ms=BASE_MS + day * DAY_MS + ms),
        country=country,
        browser_family=browser,
        device_type=device,
        policy_version=policy,
        categories=categories,
        vendors=vendors,
    )


def choice_event(visitor: str, timestamp_ms: int, *, analytics: bool) -> ConsentEvent:
    """One visitor's choice on analytics alone, at a given time."""
    return dataclasses.replace(
        make_event(1, consent_id=visitor, timestamp_ms=timestamp_ms), categories={"analytics": analytics}
    )


LOG_KEYS = LogKeys(["contract-log-key-0123456789-abcdefghijklmnopqrstuvwxyz"])
ATTACKER_KEYS = LogKeys(["an-attackers-guess-0123456789-abcdefghijklmnopqrstuvwxyz"])


def chained(events: list[ConsentEvent], instance: str = "gw-1", keys: LogKeys | None = None) -> list[ConsentEvent]:
    chain = EventChain(instance, keys=keys)
    return [chain.append(e) for e in events]


def expected_stats(events: list[ConsentEvent], by: str) -> list[tuple[str, str, int, int]]:
    import time

    def group(e: ConsentEvent) -> str:
        return {
            "day": time.strftime("%Y-%m-%d", time.gmtime(e.timestamp_ms / 1000)),
            "country": e.country or "unknown",
            "browser": e.browser_family or "unknown",
            "device": e.device_type or "unknown",
            "policy_version": e.policy_version,
        }[by]

    cells: dict[tuple[str, str], list[int]] = {}
    for e in events:
        choices = (
            [(vendor, "vendor", granted) for vendor, granted in e.vendors.items()]
            if by == "vendor"
            else [(group(e), cat, granted) for cat, granted in e.categories.items()]
        )
        for key, cat, granted in choices:
            cell = cells.setdefault((key, cat), [0, 0])
            cell[0] += 1
            cell[1] += int(granted)
    return [(g, c, t, n) for (g, c), (t, n) in sorted(cells.items())]


class ConsentLogContract:
    """What every ConsentLog backend must do. Subclasses provide the ``log`` fixture and tamper hooks."""

    @pytest.fixture
    async def log(self) -> AsyncIterator[ConsentLog]:
        raise NotImplementedError
        yield

    @pytest.fixture
    async def events(self, log: ConsentLog) -> list[ConsentEvent]:
        """40 chained events of two writers, already appended."""
        first = chained([make_event(i) for i in range(0, 40, 2)], "gw-1")
        second = chained([make_event(i) for i in range(1, 40, 2)], "gw-2")
        await log.append(first[:10])
        await log.append(second)
        await log.append(first[10:])
        return first + second

    # -- coordination between instances: leases and shared state ------------------------------------------

    @pytest.fixture
    async def other(self, log: ConsentLog) -> AsyncIterator[ConsentLog]:
        """A second connection to the same store, as another gateway instance has."""
        other = open_log(log.url)
        await other.open()
        yield other
        await other.close()

    async def test_a_lease_has_one_holder_on_every_instance_until_released(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        assert await log.lease("instance:gw-1", "host-a/1/0/aa", 60_000) == "host-a/1/0/aa"
        assert await other.lease("instance:gw-1", "host-b/2/0/bb", 60_000) == "host-a/1/0/aa"
        assert await log.lease("instance:gw-1", "host-a/1/0/aa", 60_000) == "host-a/1/0/aa"  # renewed
        assert await other.lease("instance:gw-2", "host-b/2/0/bb", 60_000) == "host-b/2/0/bb"  # another name
        await other.release_lease("instance:gw-1", "host-b/2/0/bb")  # not its lease: nothing changes
        assert await other.lease("instance:gw-1", "host-b/2/0/bb", 60_000) == "host-a/1/0/aa"
        await log.release_lease("instance:gw-1", "host-a/1/0/aa")
        assert await other.lease("instance:gw-1", "host-b/2/0/bb", 60_000) == "host-b/2/0/bb"

    async def test_a_lease_expires_after_its_ttl_and_can_be_taken_from_a_named_holder(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        assert await log.lease("retention", "dead/1/0/aa", 300) == "dead/1/0/aa"
        assert await other.lease("retention", "live/2/0/bb", 60_000) == "dead/1/0/aa"
        await asyncio.sleep(0.45)
        assert await other.lease("retention", "live/2/0/bb", 60_000) == "live/2/0/bb"
        assert await log.lease("retention", "third/3/0/cc", 60_000, take_from="someone-else") == "live/2/0/bb"
        assert await log.lease("retention", "third/3/0/cc", 60_000, take_from="live/2/0/bb") == "third/3/0/cc"

    async def test_shared_state_is_seen_by_every_instance_and_expires(self, log: ConsentLog, other: ConsentLog) -> None:
        await log.state_put("session:s1", "alice", 60_000)
        await log.state_put("session:s2", "bob", 300)
        assert await other.state_get(["session:s1", "session:s2", "session:none"]) == {
            "session:s1": "alice",
            "session:s2": "bob",
        }
        await other.state_delete(["session:s1"])
        await asyncio.sleep(0.45)
        assert await log.state_get(["session:s1", "session:s2"]) == {}
        assert await log.state_get([]) == {}

    async def test_the_store_tells_the_time_by_its_own_clock_or_says_it_has_none(self, log: ConsentLog) -> None:
        import time

        told = await log.server_time_ms()
        if isinstance(log, SQLiteConsentLog):
            assert told is None  # one file on this host: no clock but this host's
        else:  # the servers run on this machine here, so their clocks agree with it
            assert told is not None and abs(told - time.time() * 1000) < 5_000

    async def test_dashboard_users_and_tokens_made_on_one_instance_hold_on_every_other(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        from consent_gateway.admin.directory import DirectoryStore, StoredToken, StoredUser

        here, there = DirectoryStore(log), DirectoryStore(other)
        assert (await there.current()).users == {}
        await here.change(lambda d: d.with_user(StoredUser("carol", "$argon2id$x", "analyst")))
        # two instances change the directory at once: compare-and-set keeps both changes
        await asyncio.gather(
            here.change(lambda d: d.with_token(StoredToken("0123abcd", "ff" * 32, "export", "analyst"))),
            there.change(lambda d: d.with_user(StoredUser("dave", "$argon2id$y", "viewer"))),
        )
        seen = await there.current()
        assert set(seen.users) == {"carol", "dave"} and seen.token_by_digest("ff" * 32) is not None
        await here.change(lambda d: d.with_disabled("carol", True).without_token("0123abcd"))
        seen = await there.current()
        assert seen.users["carol"].disabled and seen.tokens == {}

    async def test_a_document_written_on_one_instance_is_read_with_its_version_on_every_other(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        assert await other.document_get("classifications") is None
        assert await other.document_version("classifications") == 0
        assert await log.document_put("classifications", '{"a": 1}', expected_version=0)
        assert await other.document_version("classifications") == 1
        found = await other.document_get("classifications")
        assert found is not None and (found.version, found.body) == (1, '{"a": 1}')
        assert await other.document_put("classifications", '{"a": 2} é', expected_version=1)
        found = await log.document_get("classifications")
        assert found is not None and (found.version, found.body) == (2, '{"a": 2} é')
        assert await log.document_get("other-document") is None

    async def test_a_document_written_from_a_stale_version_is_refused_and_changes_nothing(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        assert await log.document_put("overlay", "first", expected_version=0)
        assert not await other.document_put("overlay", "lost race", expected_version=0)  # both read "absent"
        assert await log.document_put("overlay", "second", expected_version=1)
        assert not await other.document_put("overlay", "stale", expected_version=1)
        found = await other.document_get("overlay")
        assert found is not None and (found.version, found.body) == (2, "second")

    async def test_a_banner_version_is_archived_once_by_its_hash_and_read_by_every_instance(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        shown = json.dumps({"texts": {"fr": {"title": "Vos choix « cookies »"}}, "policy_version": "2026-01"})
        assert await log.archive_banner("v1", shown) is True
        # a second instance serving the same version (or a restart) keeps the first archive untouched
        assert await other.archive_banner("v1", json.dumps({"changed": True})) is False
        assert await other.banner_versions(["v1", "v-never-shown", "v1"]) == {"v1": shown}
        assert await log.banner_versions([]) == {}

    async def test_a_counter_counts_across_instances_within_its_window(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        assert await log.state_incr("failures:user:alice", 300) == 1
        assert await other.state_incr("failures:user:alice", 300) == 2
        assert await log.state_incr("failures:user:alice", 300) == 3
        assert await other.state_get(["failures:user:alice"]) == {"failures:user:alice": "3"}
        await asyncio.sleep(0.45)
        assert await other.state_incr("failures:user:alice", 300) == 1  # a new window

    # -- tamper hooks (raw access, as an attacker with the database would have) -------------------------

    async def tamper_edit(self, log: ConsentLog, event: ConsentEvent, **changes: Any) -> None:
        raise NotImplementedError

    async def tamper_delete(self, log: ConsentLog, event: ConsentEvent) -> None:
        raise NotImplementedError

    async def tamper_insert_raw(self, log: ConsentLog, event: ConsentEvent) -> None:
        """Write a record behind the gateway's back (on Redis: outside every chain, as the issue found)."""
        raise NotImplementedError

    async def tamper_anchor(self, log: ConsentLog, instance: str, head: ChainHead) -> None:
        """Claim that the chain starts after ``head`` (a fake retention purge), without the log key."""
        raise NotImplementedError

    # -- the keyed chain: every forgery of issue 11 ------------------------------------------------------

    @pytest.fixture
    async def keyed(self, log: ConsentLog) -> list[ConsentEvent]:
        """40 events of two writers chained with the log key, already appended; the log verifies with it."""
        log.log_keys = LOG_KEYS  # type: ignore[attr-defined]
        first = chained([make_event(i) for i in range(0, 40, 2)], "gw-1", LOG_KEYS)
        second = chained([make_event(i) for i in range(1, 40, 2)], "gw-2", LOG_KEYS)
        await log.append(first)
        await log.append(second)
        return first + second

    async def test_a_keyed_log_verifies_and_says_what_a_missing_checkpoint_leaves_unproven(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        result = await log.verify()
        assert result.ok, result.problems[:3]
        assert result.events_checked == 40
        assert any("no checkpoint" in limit for limit in result.unproven)
        assert not any("no log key" in limit for limit in result.unproven)
        with_checkpoint = await log.verify(Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS))
        assert with_checkpoint.ok and not any("no checkpoint" in limit for limit in with_checkpoint.unproven)

    async def test_a_forged_append_with_a_recomputed_hash_is_named(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS)
        forged = EventChain("gw-1", _head(keyed[19])).append(make_event(900, consent_id="forged-grant"))
        await log.append([forged])
        for result in (await log.verify(), await log.verify(checkpoint)):
            assert not result.ok
            assert result.first_broken == forged.event_id
            assert "MAC" in (result.reason or "")

    async def test_a_forged_append_under_a_guessed_key_is_named(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        forged = EventChain("gw-1", _head(keyed[19]), keys=ATTACKER_KEYS).append(make_event(901))
        await log.append([forged])
        assert (await log.verify()).first_broken == forged.event_id

    async def test_a_new_forged_chain_is_named(self, log: ConsentLog, keyed: list[ConsentEvent]) -> None:
        forged = chained([make_event(i, consent_id="forged") for i in range(3)], "gw-9")
        await log.append(forged)
        result = await log.verify(Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS))
        assert not result.ok
        assert {e.event_id for e in forged} <= {event_id for event_id, _ in result.problems}

    async def test_an_event_with_a_bogus_hash_outside_any_chain_is_named(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        stray = dataclasses.replace(make_event(902, consent_id="stray"), hash="not-a-hash", instance_id="gw-1", seq=0)
        await self.tamper_insert_raw(log, stray)
        checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS)
        for result in (await log.verify(), await log.verify(checkpoint)):
            assert not result.ok
            assert stray.event_id in {event_id for event_id, _ in result.problems}

    async def test_a_forged_purge_anchor_is_named(self, log: ConsentLog, keyed: list[ConsentEvent]) -> None:
        gw1 = keyed[:20]
        for event in gw1[:5]:
            await self.tamper_delete(log, event)
        await self.tamper_anchor(log, "gw-1", _head(gw1[4]))
        result = await log.verify(Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS))
        assert not result.ok
        assert result.first_broken == "gw-1@5"
        assert "forged purge anchor" in (result.reason or "")

    async def test_a_real_purge_leaves_an_anchor_that_verifies(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        await log.purge(events_before_ms=BASE_MS + 10 * 3_600_000, ip_before_ms=0)
        assert await log.count(EventFilter()) == 30
        result = await log.verify()
        assert result.ok, result.problems[:3]

    async def test_edits_deletions_insertions_and_reordering_of_keyed_events_are_named(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        await self.tamper_edit(log, keyed[3], categories={"analytics": True, "marketing": True})
        await self.tamper_delete(log, keyed[8])
        await self.tamper_edit(log, keyed[12], seq=14)  # 13th and 14th swapped
        await self.tamper_edit(log, keyed[13], seq=13)
        problems = {event_id for event_id, _ in (await log.verify()).problems}
        assert {keyed[3].event_id, keyed[9].event_id, keyed[12].event_id, keyed[13].event_id} <= problems

    async def test_a_truncated_keyed_tail_is_named_against_the_checkpoint_only(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS)
        for event in keyed[17:20]:
            await self.tamper_delete(log, event)
        assert (await log.verify(checkpoint)).first_broken == "gw-1@18"

    async def test_rotated_log_keys_verify_old_events_and_write_with_the_new_key(
        self, log: ConsentLog, keyed: list[ConsentEvent]
    ) -> None:
        rotated = LogKeys(["the-new-log-key-0123456789-abcdefghijklmnopqrstuvwxyz", *LOG_KEYS.by_id.values()])
        log.log_keys = rotated  # type: ignore[attr-defined]
        newer = EventChain("gw-1", _head(keyed[19]), keys=rotated).append(make_event(903))
        await log.append([newer])
        assert newer.mac.startswith(rotated.writing_id + ":")
        assert (await log.verify()).ok
        log.log_keys = LogKeys(["the-new-log-key-0123456789-abcdefghijklmnopqrstuvwxyz"])  # type: ignore[attr-defined]
        assert not (await log.verify()).ok  # the old key removed: the old events no longer prove anything

    # -- appending and reading --------------------------------------------------------------------------

    async def test_appended_events_come_back_unchanged(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        for event in events[:5]:
            assert await log.get(event.event_id) == event
        assert await log.get("no-such-event") is None
        assert await log.count(EventFilter()) == 40

    async def test_non_ascii_and_json_special_characters_round_trip(self, log: ConsentLog) -> None:
        odd = dataclasses.replace(
            make_event(1),
            page_path='/café/日本語?q="x"',
            referrer_host="bücher.example",
            user_agent='Mozilla/5.0 "quoted" \\ back\\slash \u2028 é',
            categories={"analytics": True, "statistiques-ü": False},
        )
        events = chained([odd, make_event(2), odd.__class__(**{**dataclasses.asdict(odd), "event_id": "e-ü"})])
        await log.append(events)
        for event in events:
            assert await log.get(event.event_id) == event
        assert (await log.verify()).ok

    async def test_history_is_one_consent_ids_events_oldest_first(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        history = await log.history("consent-3")
        want = sorted((e for e in events if e.consent_id == "consent-3"), key=lambda e: e.timestamp_ms)
        assert history == want
        assert await log.history("nobody") == []

    async def test_append_is_idempotent_by_event_id(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        await log.append(events[:15])
        await log.append(events)
        assert await log.count(EventFilter()) == 40
        assert (await log.verify()).ok

    @pytest.mark.parametrize(
        "filters",
        [
            EventFilter(action="consent-withdrawn"),
            EventFilter(category="analytics"),
            EventFilter(category="marketing", country="FR"),
            EventFilter(country="DE"),
            EventFilter(browser="Firefox"),
            EventFilter(device="mobile"),
            EventFilter(policy_version="2025-06"),
            EventFilter(consent_id="consent-2"),
            EventFilter(since_ms=BASE_MS + 10 * 3_600_000, until_ms=BASE_MS + 20 * 3_600_000),
            EventFilter(since_ms=BASE_MS + 30 * 3_600_000, action="consent-given"),
            EventFilter(action="consent-updated", device="desktop"),
            EventFilter(category="analytics", device="desktop", until_ms=BASE_MS + 30 * 3_600_000),
            EventFilter(action="consent-given", category="marketing", browser="Chrome"),
            EventFilter(device="mobile", since_ms=BASE_MS + 5 * 3_600_000, until_ms=BASE_MS + 35 * 3_600_000),
            EventFilter(ip="192.0.2.3"),
            EventFilter(ip="2001:db8:4::", since_ms=BASE_MS, until_ms=BASE_MS + 6 * 3_600_000),
        ],
        ids=lambda f: ",".join(f"{k}={v}" for k, v in dataclasses.asdict(f).items() if v is not None),
    )
    async def test_query_selects_exactly_the_matching_events_newest_first(
        self, log: ConsentLog, events: list[ConsentEvent], filters: EventFilter
    ) -> None:
        want = sorted((e for e in events if filters.matches(e)), key=lambda e: (e.timestamp_ms, e.event_id))[::-1]
        assert want, "the filter should select something"
        page = await log.query(filters, limit=100)
        assert [e.event_id for e in page.events] == [e.event_id for e in want]
        assert page.next_cursor is None
        assert await log.count(filters) == len(want)

    async def test_cursor_pages_cover_every_event_once_even_within_one_millisecond(self, log: ConsentLog) -> None:
        same_ms = chained([make_event(i, timestamp_ms=BASE_MS) for i in range(12)], "gw-1")
        later = chained([make_event(i) for i in range(12, 25)], "gw-2")
        await log.append(same_ms + later)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await log.query(EventFilter(), limit=7, cursor=cursor)
            pages += 1
            assert len(page.events) <= 7
            seen += [e.event_id for e in page.events]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == 4
        want = sorted(same_ms + later, key=lambda e: (e.timestamp_ms, e.event_id), reverse=True)
        assert seen == [e.event_id for e in want]

    async def test_a_bad_cursor_is_a_clear_error(self, log: ConsentLog) -> None:
        with pytest.raises(ValueError, match="cursor"):
            await log.query(EventFilter(), cursor="not-a-cursor!")

    @pytest.mark.parametrize("by", STAT_GROUPS)
    async def test_stats_give_the_consent_rate_per_category(
        self, log: ConsentLog, events: list[ConsentEvent], by: str
    ) -> None:
        rows = await log.stats(EventFilter(), by=by)
        assert [(r.group, r.category, r.total, r.granted) for r in rows] == expected_stats(events, by)
        assert all(0.0 <= r.rate <= 1.0 for r in rows)

    async def test_stats_honour_filters_and_refuse_an_unknown_grouping(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        rows = await log.stats(EventFilter(country="FR"), by="day")
        assert [(r.group, r.category, r.total, r.granted) for r in rows] == expected_stats(
            [e for e in events if e.country == "FR"], "day"
        )
        with pytest.raises(ValueError, match="stats by"):
            await log.stats(EventFilter(), by="weather")

    async def test_export_streams_every_selected_event_oldest_first(self, log: ConsentLog) -> None:
        many = chained([make_event(i, timestamp_ms=BASE_MS + i) for i in range(2300)])
        for start in range(0, len(many), 500):
            await log.append(many[start : start + 500])
        exported = [e.event_id async for e in log.export(EventFilter())]
        assert exported == [e.event_id for e in many]
        since = BASE_MS + 1000
        assert [e.event_id async for e in log.export(EventFilter(since_ms=since, device="mobile"))] == [
            e.event_id for e in many if e.timestamp_ms >= since and e.device_type == "mobile"
        ]

    # -- counters kept on write (store/aggregates.py) ----------------------------------------------------

    async def assert_counters_match_a_scan(self, log: ConsentLog) -> None:
        """Whole-day answers come from the counters; each must equal what a scan of the stored events gives."""
        stored = [e async for e in log.export(EventFilter())]
        days = sorted({day_of(e.timestamp_ms) for e in stored})
        selections = [EventFilter()]
        if days:
            first, end = day_bounds(days[0])[0], day_bounds(days[-1])[1]
            middle = day_bounds(days[len(days) // 2])[0]
            selections += [
                EventFilter(since_ms=middle),
                EventFilter(until_ms=middle),
                EventFilter(since_ms=first + DAY_MS, until_ms=end),
            ]
        for selection in selections:
            assert aggregates.whole_days(selection) is not None
            selected = [e for e in stored if selection.matches(e)]
            for by in STAT_GROUPS:
                assert await log.stats(selection, by=by) == stats_of(selected, by), (by, selection)
            assert await log.count(selection) == len(selected)
            assert await log.daily_counts(selection) == day_counts_of(selected)
            visitors = await log.visitor_stats(selection, period="day")
            assert visitors == visitor_stats_of(selected, "day"), selection
        # A filtered count that is a sum of counters (a granted category, at most one of country, browser,
        # device, policy version) is read from them; one they cannot answer exactly scans: the same answers.
        categories = sorted({c for e in stored for c in e.categories}) or ["analytics"]
        for selection in selections[:2]:
            for category in categories:
                counted = [{}, {"country": "FR"}, {"browser": "Firefox"}, {"device": "mobile"}]
                counted.append({"policy_version": "2026-01"})
                # "unknown" is where the counters file events with no country; two dimensions are not crossed
                scans = [{"country": "unknown"}, {"country": "FR", "browser": "Firefox"}, {"action": "consent-given"}]
                for extra in counted + scans:
                    filtered = dataclasses.replace(selection, category=category, **extra)
                    assert (aggregates.granted_cells(filtered) is not None) == (extra in counted), filtered
                    expected = sum(1 for e in stored if filtered.matches(e))
                    assert await log.count(filtered) == expected, filtered
        partial = EventFilter(since_ms=1, category=categories[0])
        assert aggregates.granted_cells(partial) is None
        assert await log.count(partial) == sum(1 for e in stored if partial.matches(e))
        # Per visitor and month: whole months from the counters.
        months = sorted({aggregates.month_of(e.timestamp_ms)[2] for e in stored})
        for selection in [EventFilter(), *(EventFilter(since_ms=m) for m in months[1:2])]:
            assert aggregates.whole_periods(selection, "month") is not None
            selected = [e for e in stored if selection.matches(e)]
            assert await log.visitor_stats(selection, period="month") == visitor_stats_of(selected, "month")
        # The same questions with a bound inside a day go to the scan path: the same answers.
        scanned = EventFilter(since_ms=1)
        assert aggregates.whole_days(scanned) is None
        for by in STAT_GROUPS:
            assert await log.stats(scanned, by=by) == stats_of(stored, by)
        assert await log.daily_counts(scanned) == day_counts_of(stored)
        for period in VISITOR_PERIODS:
            assert await log.visitor_stats(scanned, period=period) == visitor_stats_of(stored, period)
        assert (await log.health())["events"] == len(stored)

    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        # one method, inherited by each backend's class
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(steps=st.lists(COUNTER_STEPS, min_size=1, max_size=6))
    async def test_counters_equal_a_scan_after_appends_erasures_and_purges(
        self, log: ConsentLog, steps: list[tuple[Any, ...]]
    ) -> None:
        # The log outlives the examples (one fixture per test): each example adds writers of its own, and
        # every state it reaches must keep the counters equal to a scan.
        chains: dict[str, EventChain] = {}
        for step in steps:
            if step[0] == "append":
                _, instance, specs = step
                chain = chains.setdefault(instance, EventChain(f"{instance}-{uuid.uuid4().hex[:8]}"))
                batch = [chain.append(counter_event(*spec)) for spec in specs]
                await log.append(batch)
                await log.append(batch[: len(batch) // 2])  # a replayed batch adds nothing
            elif step[0] == "erase":
                await log.erase(f"visitor-{step[1]}")
            else:
                cutoff = BASE_MS + step[1] * DAY_MS + step[2]
                await log.purge(events_before_ms=cutoff, ip_before_ms=cutoff + DAY_MS)
            await self.assert_counters_match_a_scan(log)

    async def test_a_batch_holding_an_event_twice_and_a_stored_one_counts_each_new_event_once(
        self, log: ConsentLog
    ) -> None:
        chain = EventChain(f"dup-{uuid.uuid4().hex[:8]}")
        day_ms = BASE_MS + 50 * DAY_MS
        first, second, third = (
            chain.append(make_event(i, consent_id=f"dup-visitor-{i}", timestamp_ms=day_ms + i)) for i in range(3)
        )
        await log.append([first])
        await log.append([first, second, second, third, third])
        counts = await log.daily_counts(EventFilter(since_ms=day_ms, until_ms=day_ms + DAY_MS))
        assert [(c.events, c.visitors) for c in counts] == [(3, 3)]
        await self.assert_counters_match_a_scan(log)

    async def test_two_instances_writing_one_visitor_day_at_once_count_it_once(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        """Two gateways record events of the same visitors on the same day in the same instant: the
        dashboard's visitor count is still one per visitor and day (no write may miss the other's)."""
        visitors = [f"racing-{i}" for i in range(25)]
        first_day = BASE_MS + 40 * DAY_MS
        for round_ in range(6):
            day_ms = first_day + round_ * DAY_MS
            batches = [
                chained(
                    [make_event(i, consent_id=v, timestamp_ms=day_ms + offset + i) for i, v in enumerate(visitors)],
                    f"racer-{round_}-{side}",
                )
                for side, offset in (("a", 0), ("b", 60_000))
            ]
            await asyncio.gather(log.append(batches[0]), other.append(batches[1]))
        counts = await log.daily_counts(EventFilter(since_ms=first_day, until_ms=first_day + 6 * DAY_MS))
        assert [(c.events, c.visitors) for c in counts] == [(50, 25)] * 6

    async def test_the_counters_answer_the_dashboard_after_an_erasure_and_a_purge(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        await self.assert_counters_match_a_scan(log)
        await log.erase("consent-3")
        await self.assert_counters_match_a_scan(log)
        await log.purge(events_before_ms=BASE_MS + 15 * 3_600_000 + 1, ip_before_ms=BASE_MS + DAY_MS)
        await self.assert_counters_match_a_scan(log)
        day = await log.daily_counts(EventFilter(since_ms=BASE_MS, until_ms=BASE_MS + DAY_MS))
        remaining = [e for e in events if BASE_MS + 15 * 3_600_000 < e.timestamp_ms < BASE_MS + DAY_MS]
        assert day == [DayCount("2026-01-01", len(remaining), len({e.consent_id for e in remaining}))]

    # -- per-visitor counters: each visitor's latest choice per day and month ----------------------------

    async def visitor_rates(self, log: ConsentLog, since_ms: int, period: str = "day") -> dict[tuple[str, str], Any]:
        """``(period, category) → (visitors, of which granted)`` of the whole days or months from ``since_ms``."""
        rows = await log.visitor_stats(EventFilter(since_ms=since_ms), period=period)
        return {(r.group, r.category): (r.total, r.granted) for r in rows}

    async def test_a_visitor_who_grants_then_refuses_counts_once_as_refusing(self, log: ConsentLog) -> None:
        day = BASE_MS + 60 * DAY_MS  # 2026-03-02
        chain = EventChain(f"mind-{uuid.uuid4().hex[:8]}")
        grant, refuse = (
            chain.append(choice_event("changes-mind", day + at, analytics=granted))
            for at, granted in ((3_600_000, True), (7_200_000, False))
        )
        # the later choice arrives first (a spool replayed late): the latest by time still decides
        await log.append([refuse])
        await log.append([grant])
        assert await self.visitor_rates(log, day) == {("2026-03-02", "analytics"): (1, 0)}
        assert await self.visitor_rates(log, day - DAY_MS, "month") == {("2026-03", "analytics"): (1, 0)}
        per_event = await log.stats(EventFilter(since_ms=day), by="day")
        assert [(r.total, r.granted) for r in per_event] == [(2, 1)]  # per event, both choices count
        # the next day the visitor grants again: counted once on each day, once in the month (granting)
        await log.append([chain.append(choice_event("changes-mind", day + DAY_MS, analytics=True))])
        assert await self.visitor_rates(log, day) == {
            ("2026-03-02", "analytics"): (1, 0),
            ("2026-03-03", "analytics"): (1, 1),
        }
        assert await self.visitor_rates(log, day - DAY_MS, "month") == {("2026-03", "analytics"): (1, 1)}
        await self.assert_counters_match_a_scan(log)

    async def test_two_visitors_count_twice_and_one_visitor_with_two_events_once(self, log: ConsentLog) -> None:
        day = BASE_MS + 70 * DAY_MS  # 2026-03-12
        chain = EventChain(f"two-{uuid.uuid4().hex[:8]}")
        await log.append(
            [
                chain.append(choice_event("alice", day + 1000, analytics=True)),
                chain.append(choice_event("bob", day + 2000, analytics=True)),
                chain.append(choice_event("carol", day + 3000, analytics=True)),
                chain.append(choice_event("carol", day + 4000, analytics=True)),
            ]
        )
        assert await self.visitor_rates(log, day) == {("2026-03-12", "analytics"): (3, 3)}
        [events] = await log.stats(EventFilter(since_ms=day), by="day")
        assert (events.total, events.granted) == (4, 4)

    async def test_two_instances_writing_one_visitor_at_once_count_the_latest_choice_once(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        """Two gateways record choices of the same visitors in the same instant, one granting, the other (a
        minute later by the clock) refusing: each visitor counts once per day and month, as refusing."""
        visitors = [f"racing-mind-{i}" for i in range(25)]
        first_day = BASE_MS + 100 * DAY_MS  # 2026-04-11
        for round_ in range(4):
            day_ms = first_day + round_ * DAY_MS
            grants, refusals = (
                chained(
                    [choice_event(v, day_ms + offset + i, analytics=granted) for i, v in enumerate(visitors)],
                    f"mind-racer-{round_}-{side}-{uuid.uuid4().hex[:6]}",
                )
                for side, offset, granted in (("a", 0, True), ("b", 60_000, False))
            )
            await asyncio.gather(log.append(grants), other.append(refusals))
        rates = await self.visitor_rates(log, first_day)
        assert rates == {(day_of(first_day + r * DAY_MS), "analytics"): (25, 0) for r in range(4)}
        assert await self.visitor_rates(log, BASE_MS + 90 * DAY_MS, "month") == {("2026-04", "analytics"): (25, 0)}

    async def test_a_visitor_who_erases_their_data_leaves_that_periods_figures(self, log: ConsentLog) -> None:
        day = BASE_MS + 130 * DAY_MS  # 2026-05-11
        chain = EventChain(f"erase-{uuid.uuid4().hex[:8]}")
        await log.append(
            [
                chain.append(choice_event("eraser", day - DAY_MS, analytics=True)),  # the day before
                chain.append(choice_event("eraser", day + 1000, analytics=True)),
                chain.append(choice_event("stayer", day + 2000, analytics=True)),
            ]
        )
        assert await log.erase("eraser") == 2  # personal fields go: the figures stay
        assert await self.visitor_rates(log, day - DAY_MS) == {
            ("2026-05-10", "analytics"): (1, 1),
            ("2026-05-11", "analytics"): (2, 2),
        }
        # the visitor's own page records a `data-erased` event, with no choice: their latest act of the day
        erased = dataclasses.replace(
            choice_event("eraser", day + 5000, analytics=True), action=DATA_ERASED, categories={}
        )
        await log.append([chain.append(erased)])
        assert await self.visitor_rates(log, day - DAY_MS) == {
            ("2026-05-10", "analytics"): (1, 1),  # the day before still had their choice
            ("2026-05-11", "analytics"): (1, 1),  # only the visitor who stayed
        }
        assert await self.visitor_rates(log, day - 10 * DAY_MS, "month") == {("2026-05", "analytics"): (1, 1)}
        await self.assert_counters_match_a_scan(log)

    async def test_a_retention_purge_takes_its_visitors_from_the_periods_it_empties(self, log: ConsentLog) -> None:
        day = BASE_MS + 150 * DAY_MS  # 2026-05-31
        chain = EventChain(f"purge-{uuid.uuid4().hex[:8]}")
        await log.append(
            [
                chain.append(choice_event("returning", day - DAY_MS + 1000, analytics=True)),  # 2026-05-30
                chain.append(choice_event("returning", day + 1000, analytics=False)),  # 2026-05-31
                chain.append(choice_event("returning", day + DAY_MS + 1000, analytics=True)),  # 2026-06-01
            ]
        )
        since = day - 40 * DAY_MS
        assert await self.visitor_rates(log, since) == {
            ("2026-05-30", "analytics"): (1, 1),
            ("2026-05-31", "analytics"): (1, 0),
            ("2026-06-01", "analytics"): (1, 1),
        }
        await log.purge(events_before_ms=day, ip_before_ms=0)
        assert await self.visitor_rates(log, since) == {
            ("2026-05-31", "analytics"): (1, 0),
            ("2026-06-01", "analytics"): (1, 1),
        }
        assert await self.visitor_rates(log, since - 10 * DAY_MS, "month") == {
            ("2026-05", "analytics"): (1, 0),
            ("2026-06", "analytics"): (1, 1),
        }
        await log.purge(events_before_ms=day + DAY_MS, ip_before_ms=0)
        assert await self.visitor_rates(log, since - 10 * DAY_MS, "month") == {("2026-06", "analytics"): (1, 1)}
        await self.assert_counters_match_a_scan(log)

    async def test_a_visitor_period_that_is_not_whole_or_unknown_is_answered_or_refused(self, log: ConsentLog) -> None:
        day = BASE_MS + 200 * DAY_MS
        chain = EventChain(f"scan-{uuid.uuid4().hex[:8]}")
        await log.append([chain.append(choice_event("scanned", day + at, analytics=at < 5000)) for at in (1000, 9000)])
        # a bound inside the day: the latest selected event of the visitor decides (a scan)
        rows = await log.visitor_stats(EventFilter(since_ms=day, until_ms=day + 5000), period="day")
        assert [(r.total, r.granted) for r in rows] == [(1, 1)]
        with pytest.raises(ValueError, match="expected one of day, month"):
            await log.visitor_stats(EventFilter(), period="week")

    # -- erasure and retention --------------------------------------------------------------------------

    async def test_erase_removes_personal_fields_of_one_consent_id_and_the_chain_still_verifies(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        target = [e for e in events if e.consent_id == "consent-4"]
        assert await log.erase("consent-4") == len(target)
        for event in await log.history("consent-4"):
            assert all(getattr(event, f) is None for f in PERSONAL_FIELDS)
            assert event.salts == {}
            assert event.commitments  # the non-personal commitment stays
            assert event.erased_at_ms is not None
            assert event.categories == next(e.categories for e in target if e.event_id == event.event_id)
        untouched = await log.history("consent-5")
        assert all(e.ip is not None and e.user_agent is not None for e in untouched)
        assert (await log.verify()).ok
        assert await log.erase("consent-4") == 0  # nothing left to erase

    async def test_an_event_older_than_an_erasure_arriving_late_is_stored_erased(self, log: ConsentLog) -> None:
        # Replayed from a spool after the privacy officer erased its consent id.
        import time

        waited, came_back = chained(
            [
                make_event(1, consent_id="erased-meanwhile", timestamp_ms=BASE_MS),
                make_event(2, consent_id="erased-meanwhile", timestamp_ms=int(time.time() * 1000) + 60_000),
            ]
        )
        assert await log.erase("erased-meanwhile") == 0
        await log.append([waited, came_back])
        stored = await log.get(waited.event_id)
        assert stored is not None
        assert all(getattr(stored, f) is None for f in PERSONAL_FIELDS)
        assert (stored.salts, stored.commitments) == ({}, waited.commitments)
        assert stored.erased_at_ms is not None
        later = await log.get(came_back.event_id)  # the visitor came back after the erasure: a new record
        assert later is not None and later.ip == came_back.ip
        assert (await log.verify()).ok

    async def test_purge_deletes_old_events_and_old_ips_and_the_chain_still_verifies(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        cutoff = BASE_MS + 20 * 3_600_000
        ip_cutoff = BASE_MS + 30 * 3_600_000
        result = await log.purge(events_before_ms=cutoff, ip_before_ms=ip_cutoff)
        assert result.events_deleted == 20
        assert result.ips_removed == 10
        remaining = [e async for e in log.export(EventFilter())]
        by_time = sorted(events, key=lambda e: e.timestamp_ms)
        assert [e.event_id for e in remaining] == [e.event_id for e in by_time if e.timestamp_ms >= cutoff]
        for event in remaining:
            assert (event.ip is None) == (event.timestamp_ms < ip_cutoff)
            assert event.user_agent is not None
        verified = await log.verify()
        assert verified.ok, verified.problems
        # Writers keep chaining after a purge; a second purge finds nothing more to delete.
        heads = await log.chain_heads()
        chain = EventChain("gw-1", heads["gw-1"])
        await log.append([chain.append(make_event(99))])
        assert await log.purge(events_before_ms=cutoff, ip_before_ms=ip_cutoff) == type(result)(0, 0)
        assert (await log.verify()).ok

    async def test_purging_a_whole_chain_keeps_its_head_for_the_writer(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        before = await log.chain_heads()
        await log.purge(events_before_ms=BASE_MS + 1000 * DAY_MS, ip_before_ms=0)
        assert await log.count(EventFilter()) == 0
        assert await log.chain_heads() == before
        chain = EventChain("gw-2", before["gw-2"])
        await log.append([chain.append(make_event(1))])
        assert (await log.verify()).ok

    # -- integrity --------------------------------------------------------------------------------------

    async def test_untouched_chains_verify(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        result = await log.verify()
        assert result.ok
        assert result.events_checked == 40
        assert result.chains == 2
        assert result.first_broken is None
        heads = await log.chain_heads()
        assert heads["gw-1"].seq == 20 and heads["gw-2"].seq == 20
        assert heads["gw-1"].hash == events[19].hash

    async def test_verify_names_an_edited_event(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        await self.tamper_edit(log, events[5], country="CN")
        result = await log.verify()
        assert not result.ok
        assert result.first_broken == events[5].event_id
        assert "altered" in (result.reason or "")

    async def test_verify_names_an_event_whose_ip_was_edited(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        await self.tamper_edit(log, events[7], ip="198.51.100.7")
        result = await log.verify()
        assert result.first_broken == events[7].event_id
        assert result.reason == "personal field 'ip' altered"

    async def test_verify_names_the_event_after_one_edited_with_a_recomputed_hash(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        forged = dataclasses.replace(events[3], categories={"analytics": True, "marketing": True})
        from consent_gateway.events import event_hash

        forged = dataclasses.replace(forged, hash=event_hash(forged))
        await self.tamper_edit(log, events[3], categories=forged.categories, hash=forged.hash)
        result = await log.verify()
        assert result.first_broken == events[4].event_id
        assert "prev_hash" in (result.reason or "")

    async def test_verify_names_the_event_after_a_deleted_one(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        await self.tamper_delete(log, events[8])
        result = await log.verify()
        assert not result.ok
        assert result.first_broken == events[9].event_id
        assert "deleted" in (result.reason or "")

    async def test_verify_names_an_inserted_event(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        # A forged event chained onto event 4 and given seq 6: the real seq 6 no longer links to it.
        intruder = EventChain("gw-1", _head(events[4])).append(make_event(500))
        await log.append([intruder])
        result = await log.verify()
        assert not result.ok
        assert result.first_broken in (intruder.event_id, events[5].event_id)

    async def test_a_checkpoint_reveals_a_truncated_tail(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS)
        for event in events[17:20]:
            await self.tamper_delete(log, event)
        result = await log.verify(checkpoint)
        assert not result.ok
        assert result.first_broken == "gw-1@18"
        assert "truncated" in (result.reason or "")
        assert (await log.verify(Checkpoint.from_json(checkpoint.to_json()))).first_broken == "gw-1@18"

    async def test_a_checkpoint_of_an_untouched_log_verifies_after_more_appends(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=BASE_MS)
        chain = EventChain("gw-1", checkpoint.heads["gw-1"])
        await log.append([chain.append(make_event(i)) for i in range(3)])
        await log.erase("consent-1")
        assert (await log.verify(checkpoint)).ok

    async def test_health_reports_the_backend_and_event_count(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        health = await log.health()
        assert health["ok"] is True
        assert health["events"] == 40

    async def test_a_key_is_claimed_once_until_it_expires(self, log: ConsentLog) -> None:
        import asyncio

        assert await log.claim("sync:token-1:example.org", 0.5) is True
        assert await log.claim("sync:token-1:example.org", 0.5) is False  # a replay
        assert await log.claim("sync:token-1:example.net", 0.5) is True  # the same token on another domain
        await asyncio.sleep(0.6)
        assert await log.claim("sync:token-1:example.org", 0.5) is True  # forgotten once expired

    async def test_a_users_latest_choice_is_kept_and_an_older_one_does_not_replace_it(self, log: ConsentLog) -> None:
        assert await log.user_choice("user-key-1") is None
        await log.remember_user_choice("user-key-1", "consent-a", "signed-value-1", BASE_MS)
        await log.remember_user_choice("user-key-1", "consent-a", "signed-value-2", BASE_MS + 10)
        await log.remember_user_choice("user-key-1", "consent-a", "late-older-value", BASE_MS + 5)
        assert await log.user_choice("user-key-1") == ("consent-a", "signed-value-2")
        await log.remember_user_choice("user-key-1", "consent-a", "", BASE_MS + 20)  # withdrawn
        assert await log.user_choice("user-key-1") == ("consent-a", "")
        assert await log.user_choice("user-key-2") is None

    async def test_a_write_probe_passes_on_a_writable_log_and_records_nothing(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        await log.write_probe()
        await log.write_probe()
        assert (await log.health())["events"] == 40
        assert (await log.verify()).ok


def _head(event: ConsentEvent) -> Any:
    from consent_gateway.events import ChainHead

    return ChainHead(seq=event.seq, hash=event.hash)


class TestSQLiteConsentLog(ConsentLogContract):
    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[ConsentLog]:
        log = open_log(f"sqlite:///{tmp_path / 'data' / 'consent.db'}")
        assert isinstance(log, SQLiteConsentLog)
        await log.open()
        yield log
        await log.close()

    async def test_the_write_probe_fails_while_another_process_holds_the_write_lock(self, tmp_path: Path) -> None:
        import sqlite3

        from consent_gateway.errors import StoreUnavailable

        log = SQLiteConsentLog(f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout_ms=100)
        await log.open()
        locker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            assert (await log.health())["ok"] is True  # reading still works: why readiness must try a write
            with pytest.raises(StoreUnavailable, match="write probe"):
                await log.write_probe()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await log.write_probe()
        await log.close()

    def _db(self, log: ConsentLog) -> sqlite3.Connection:
        assert isinstance(log, SQLiteConsentLog)
        return sqlite3.connect(log.path, isolation_level=None)

    async def tamper_edit(self, log: ConsentLog, event: ConsentEvent, **changes: Any) -> None:
        with self._db(log) as db:
            for column, value in changes.items():
                stored = json.dumps(value) if isinstance(value, dict) else value
                db.execute(f"UPDATE events SET {column} = ? WHERE event_id = ?", (stored, event.event_id))

    async def tamper_delete(self, log: ConsentLog, event: ConsentEvent) -> None:
        with self._db(log) as db:
            db.execute("DELETE FROM events WHERE event_id = ?", (event.event_id,))

    async def tamper_insert_raw(self, log: ConsentLog, event: ConsentEvent) -> None:
        from consent_gateway.store.sqlite_schema import insert_statements, to_row

        with self._db(log) as db:
            for sql, params in insert_statements([to_row(event)]):
                db.execute(sql, params)

    async def tamper_anchor(self, log: ConsentLog, instance: str, head: ChainHead) -> None:
        with self._db(log) as db:
            db.execute(
                "INSERT OR REPLACE INTO chain_anchors (instance_id, seq, hash, purged_at_ms, mac)"
                " VALUES (?, ?, ?, 0, '')",
                (instance, head.seq, head.hash),
            )

    async def test_the_database_is_durable_wal_with_a_schema_version(self, log: ConsentLog) -> None:
        with self._db(log) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] >= 1
        assert isinstance(log, SQLiteConsentLog)
        on_writer = await log._write("pragma", lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert on_writer == 2  # FULL

    async def test_reopening_does_not_migrate_twice(self, log: ConsentLog, tmp_path: Path) -> None:
        again = open_log(log.url)
        await again.open()
        await again.close()
        with self._db(log) as db:
            from consent_gateway.store.sqlite import MIGRATIONS

            assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)

    async def test_an_older_database_is_migrated_in_place(self, tmp_path: Path) -> None:
        from consent_gateway.store.sqlite import MIGRATIONS

        path = tmp_path / "old.db"
        event = chained([make_event(1)])[0]
        with sqlite3.connect(path, isolation_level=None) as db:  # as version 1 left it
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.executescript(MIGRATIONS[0])
            db.execute("INSERT INTO schema_version (version) VALUES (1)")
        old = open_log(f"sqlite:///{path}")
        await old.open()
        await old.append([event])
        assert await old.get(event.event_id) == event
        await old.close()
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
            indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"events_country", "events_policy", "events_browser"} <= indexes

    async def test_a_database_from_before_the_counters_is_counted_on_migration(self, tmp_path: Path) -> None:
        from consent_gateway.store.sqlite import MIGRATIONS

        path = tmp_path / "before-counters.db"
        events = chained([make_event(i) for i in range(30)])
        before = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE aggregates" in m)
        with sqlite3.connect(path, isolation_level=None) as db:  # as the version before counters left it
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            for migration in MIGRATIONS[:before]:
                db.executescript(migration)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (before,))
        from consent_gateway.store.sqlite_schema import insert_statements, to_row

        with sqlite3.connect(path, isolation_level=None) as db:
            for sql, params in insert_statements([to_row(e) for e in events]):
                db.execute(sql, params)
        log = open_log(f"sqlite:///{path}")
        await log.open()
        try:
            assert await log.count(EventFilter(since_ms=BASE_MS)) == 30
            await ConsentLogContract.assert_counters_match_a_scan(self, log)
        finally:
            await log.close()

    async def test_a_database_from_before_the_visitor_counters_counts_its_visitors_on_migration(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        from consent_gateway.store.sqlite import MIGRATIONS

        await log.close()
        with self._db(log) as db:  # as the version before per-visitor counters left it
            db.execute("DELETE FROM aggregates WHERE dim LIKE 'visitor-%'")
            db.execute("DELETE FROM schema_version WHERE version >= ?", (len(MIGRATIONS),))
        upgraded = open_log(log.url)
        await upgraded.open()
        try:
            assert await upgraded.visitor_stats(EventFilter(), period="day") == visitor_stats_of(events, "day")
            await ConsentLogContract.assert_counters_match_a_scan(self, upgraded)
        finally:
            await upgraded.close()

    async def test_a_newer_schema_is_refused(self, log: ConsentLog) -> None:
        with self._db(log) as db:
            db.execute("INSERT INTO schema_version (version) VALUES (99)")
        newer = open_log(log.url)
        with pytest.raises(StoreUnavailable, match="newer"):
            await newer.open()
        await newer.close()

    async def test_the_logs_own_head_record_reveals_a_truncated_tail(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        await self.tamper_delete(log, events[19])
        result = await log.verify()
        assert result.first_broken == "gw-1@20"


@pytest.mark.redis
class TestRedisConsentLog(ConsentLogContract):
    @pytest.fixture
    async def log(self, redis_url: str, redis_prefix: str) -> AsyncIterator[ConsentLog]:
        log = open_log(f"{redis_url}?prefix={redis_prefix}")
        assert isinstance(log, RedisConsentLog)
        await log.open()
        yield log
        await log.close()

    def _raw(self, log: ConsentLog) -> redis_sync.Redis:
        assert isinstance(log, RedisConsentLog)
        return redis_sync.Redis.from_url(log._client_url, decode_responses=True)

    async def tamper_edit(self, log: ConsentLog, event: ConsentEvent, **changes: Any) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:
            data = json.loads(raw.hget(log._k_ev, event.event_id))
            data.update(changes)
            raw.hset(log._k_ev, event.event_id, json.dumps(data))

    async def tamper_delete(self, log: ConsentLog, event: ConsentEvent) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:
            raw.hdel(log._k_ev, event.event_id)
            raw.zrem(log._k_chain + event.instance_id, event.event_id)
            raw.zrem(log._k_time, f"{event.timestamp_ms:013d}:{event.event_id}")

    async def tamper_insert_raw(self, log: ConsentLog, event: ConsentEvent) -> None:
        assert isinstance(log, RedisConsentLog)
        member = f"{event.timestamp_ms:013d}:{event.event_id}"
        with self._raw(log) as raw:  # the record and its time and consent indexes, no chain
            raw.hset(log._k_ev, event.event_id, json.dumps(event_to_dict(event)))
            raw.zadd(log._k_time, {member: 0})
            raw.zadd(log._k_consent + event.consent_id, {member: 0})

    async def tamper_anchor(self, log: ConsentLog, instance: str, head: ChainHead) -> None:
        assert isinstance(log, RedisConsentLog)
        anchor = {"seq": head.seq, "hash": head.hash, "purged_at_ms": 0}
        with self._raw(log) as raw:
            raw.hset(log._k_anchors, instance, json.dumps(anchor))

    async def test_every_key_carries_the_hash_tag(self, log: ConsentLog, events: list[ConsentEvent]) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:
            keys = list(raw.scan_iter(match="*" + log.prefix + "*"))
        assert keys
        assert all(k.startswith("{" + log.prefix + "}:") for k in keys)

    async def test_a_log_from_before_the_counters_is_counted_once_on_open(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:  # as a version without counters left it
            tag = "{" + log.prefix + "}"
            raw.delete(*list(raw.scan_iter(match=tag + ":agg*")), tag + ":counted", tag + ":vcounted")
        reopened = RedisConsentLog(log.url)
        await reopened.open()
        try:
            assert await reopened.count(EventFilter(since_ms=BASE_MS)) == 40
            await self.assert_counters_match_a_scan(reopened)
        finally:
            await reopened.close()

    async def test_a_log_from_before_the_visitor_counters_counts_its_visitors_once_on_open(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:  # as the version with per-day counters but none per visitor left it
            tag = "{" + log.prefix + "}"
            raw.delete(*list(raw.scan_iter(match=tag + ":agg:*:visitor-*")), tag + ":vcounted")
        reopened = RedisConsentLog(log.url)
        await reopened.open()
        try:
            assert await reopened.visitor_stats(EventFilter(), period="month") == visitor_stats_of(events, "month")
            await self.assert_counters_match_a_scan(reopened)
        finally:
            await reopened.close()

    async def test_filtered_searches_walk_their_value_s_index_kept_on_append_and_purge(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        german = EventFilter(country="DE")
        wanted = sorted((e for e in events if german.matches(e)), key=lambda e: (-e.timestamp_ms, e.event_id))
        assert wanted and len(wanted) < len(events)
        index = log._index_key("country", "DE")
        with self._raw(log) as raw:
            assert raw.zcard(index) == len(wanted)
            # an event taken out of its country's index only is no longer found by a country search: the
            # search reads the index, not every event of its time range
            raw.zrem(index, f"{wanted[0].timestamp_ms:013d}:{wanted[0].event_id}")
        found = await log.query(german, limit=100)
        assert [e.event_id for e in found.events] == [e.event_id for e in wanted[1:]]
        assert await log.count(german) == len(wanted) - 1
        browser = wanted[1].browser_family
        assert browser is not None
        german_on_browser = dataclasses.replace(german, browser=browser)
        both = [e.event_id for e in wanted[1:] if e.browser_family == browser]
        assert await log.count(german_on_browser) == len(both)
        with self._raw(log) as raw:  # several filters: each candidate must be in every index they name
            raw.zrem(log._index_key("browser", browser), f"{wanted[1].timestamp_ms:013d}:{wanted[1].event_id}")
        assert await log.count(german_on_browser) == len(both) - 1
        page = await log.query(german_on_browser, limit=100)
        assert [e.event_id for e in page.events] == both[1:]
        assert wanted[1].event_id in [e.event_id for e in (await log.query(german, limit=100)).events]
        await log.purge(events_before_ms=BASE_MS + 100 * DAY_MS, ip_before_ms=0)
        with self._raw(log) as raw:  # a purge takes its events out of every index: no memory left behind
            assert list(raw.scan_iter(match="{" + log.prefix + "}:x:*")) == []

    @pytest.mark.parametrize(
        ("name", "filters"),
        [
            ("action", EventFilter(action="consent-withdrawn")),
            ("device", EventFilter(device="mobile")),
            ("category", EventFilter(category="analytics")),
        ],
    )
    async def test_an_action_device_or_category_search_walks_its_own_index(
        self, log: ConsentLog, events: list[ConsentEvent], name: str, filters: EventFilter
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        wanted = sorted((e for e in events if filters.matches(e)), key=lambda e: (-e.timestamp_ms, e.event_id))
        assert wanted and len(wanted) < len(events)
        value = str(getattr(filters, name))
        index = log._index_key(name, value)
        with self._raw(log) as raw:
            assert raw.zcard(index) == len(wanted)  # a refused category is not in its index
            # taken out of its value's index only, an event is no longer found: the search and the count read
            # the index, not every event of the time range
            raw.zrem(index, f"{wanted[0].timestamp_ms:013d}:{wanted[0].event_id}")
        page = await log.query(filters, limit=100)
        assert [e.event_id for e in page.events] == [e.event_id for e in wanted[1:]]
        # the count of a granted category over whole days reads the day counters (which still hold that event)
        counted = aggregates.granted_cells(filters) is not None
        assert counted == (name == "category")
        assert await log.count(filters) == len(wanted) - (0 if counted else 1)
        since = dataclasses.replace(filters, since_ms=wanted[-1].timestamp_ms + 1)
        assert await log.count(since) == len(wanted) - 2  # one ZLEXCOUNT over the time range
        await log.purge(events_before_ms=BASE_MS + 100 * DAY_MS, ip_before_ms=0)
        with self._raw(log) as raw:
            assert list(raw.scan_iter(match="{" + log.prefix + "}:x:*")) == []

    async def test_a_log_indexed_before_the_action_device_and_category_indexes_is_indexed_again_once(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:  # as the version with country, browser and policy indexes only left it
            # SCAN, not KEYS: a Cluster client sends KEYS to one node, which may not hold the log's slot
            names = ("action", "device", "category")
            old = [k for name in names for k in raw.scan_iter(match=log._index_key(name, "*"))]
            assert old
            raw.delete(*old)
            raw.set("{" + log.prefix + "}:indexed", "1")
        reopened = RedisConsentLog(log.url)
        await reopened.open()
        try:
            for filters in (
                EventFilter(action="consent-withdrawn"),
                EventFilter(device="desktop", category="marketing"),
                EventFilter(category="analytics", country="FR"),
            ):
                wanted = [e.event_id for e in events if filters.matches(e)]
                assert wanted
                page = await reopened.query(filters, limit=100)
                assert sorted(e.event_id for e in page.events) == sorted(wanted)
                assert await reopened.count(filters) == len(wanted)
            with self._raw(log) as raw:
                assert raw.get("{" + log.prefix + "}:indexed") == "2"
                assert raw.zcard(log._index_key("action", "consent-withdrawn")) == len(
                    [e for e in events if e.action == "consent-withdrawn"]
                )
        finally:
            await reopened.close()

    async def test_a_log_from_before_the_filter_indexes_is_indexed_once_on_open(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:  # as a version without filter indexes left it
            raw.delete(*list(raw.scan_iter(match="{" + log.prefix + "}:x:*")), "{" + log.prefix + "}:indexed")
        reopened = RedisConsentLog(log.url)
        await reopened.open()
        try:
            for filters in (EventFilter(country="FR"), EventFilter(browser="Chrome", policy_version="2025-06")):
                wanted = [e.event_id for e in events if filters.matches(e)]
                assert wanted
                page = await reopened.query(filters, limit=100)
                assert sorted(e.event_id for e in page.events) == sorted(wanted)
                assert await reopened.count(filters) == len(wanted)
            with self._raw(log) as raw:
                assert raw.exists("{" + log.prefix + "}:indexed")
        finally:
            await reopened.close()

    async def test_a_record_deleted_behind_its_index_is_named(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        with self._raw(log) as raw:
            raw.hdel(log._k_ev, events[2].event_id)
        result = await log.verify()
        assert result.first_broken == events[2].event_id

    async def test_open_warns_loudly_when_redis_does_not_persist(
        self, volatile_redis: RedisProcess, caplog: pytest.LogCaptureFixture
    ) -> None:
        log = RedisConsentLog(volatile_redis.url)
        with caplog.at_level("WARNING", logger="consent_gateway.store.redis"):
            await log.open()
        assert "REDIS PERSISTENCE IS OFF" in caplog.text
        assert (await log.health())["durable"] is False
        await log.close()

    async def test_open_is_quiet_when_redis_persists_every_write(
        self, own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
    ) -> None:
        log = RedisConsentLog(own_redis.url)
        with caplog.at_level("INFO", logger="consent_gateway.store.redis"):
            await log.open()
        assert caplog.records == []
        assert (await log.health())["durable"] is True
        await log.close()

    async def test_an_unreachable_redis_is_store_unavailable(self) -> None:
        from tests.conftest import free_port

        log = open_log(f"redis://:s3cret-password@127.0.0.1:{free_port()}/0")
        with pytest.raises(StoreUnavailable) as opening:
            await log.open()
        with pytest.raises(StoreUnavailable) as appending:
            await log.append([make_event(1)])
        health = await log.health()
        assert health["ok"] is False
        for text in (str(opening.value), str(appending.value), str(health)):
            assert "s3cret" not in text
        await log.close()


@pytest.mark.redis
class TestRedisClusterConsentLog(TestRedisConsentLog):
    """The whole contract again on a real 3-master Redis Cluster (``redis+cluster://``)."""

    @pytest.fixture
    async def log(self, redis_cluster_url: str) -> AsyncIterator[ConsentLog]:
        prefix = f"cgtest-{uuid.uuid4().hex[:12]}"
        log = open_log(f"{redis_cluster_url}?prefix={prefix}")
        assert isinstance(log, RedisConsentLog) and log.cluster
        await log.open()
        yield log
        await log.close()
        with self._raw(log) as raw:
            for key in list(raw.scan_iter(match="{" + prefix + "}:*", count=1000)):
                raw.delete(key)

    def _raw(self, log: ConsentLog) -> Any:
        assert isinstance(log, RedisConsentLog)
        return redis_sync.RedisCluster.from_url(log._client_url, decode_responses=True)

    async def test_the_whole_log_lives_in_one_slot_of_one_master(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        assert isinstance(log, RedisConsentLog)
        await log.erase("consent-3")
        await log.purge(events_before_ms=BASE_MS + 10 * 3_600_000, ip_before_ms=BASE_MS + DAY_MS)
        with self._raw(log) as raw:
            keys = list(raw.scan_iter(match="{" + log.prefix + "}:*", count=1000))
            slots = {raw.keyslot(k) for k in keys}
            masters = {n.name for n in raw.get_primaries()}
        assert len(keys) > 10
        assert len(slots) == 1
        assert len(masters) == 3  # a real cluster: the log's slot is one master's among three

    async def test_the_health_says_cluster(self, log: ConsentLog) -> None:
        health = await log.health()
        assert health["ok"] is True
        assert health["url"].startswith("redis+cluster://127.0.0.1:")

    # Persistence warnings are checked per server on the standalone class.
    test_open_warns_loudly_when_redis_does_not_persist = None  # type: ignore[assignment]
    test_open_is_quiet_when_redis_persists_every_write = None  # type: ignore[assignment]

    async def test_an_unreachable_redis_is_store_unavailable(self) -> None:
        from tests.conftest import free_port

        log = open_log(f"redis+cluster://:s3cret-password@127.0.0.1:{free_port()}")
        with pytest.raises(StoreUnavailable) as opening:
            await log.open()
        health = await log.health()
        assert health["ok"] is False
        for text in (str(opening.value), str(health)):
            assert "s3cret" not in text
        await log.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+cluster:///0", "host:port"),
        ("redis://127.0.0.1:6379/0?prefix=a{b}", "hash tag"),
    ],
)
def test_a_bad_redis_url_is_a_config_error_naming_the_key(url: str, message: str) -> None:
    from consent_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as error:
        open_log(url)
    assert error.value.key == "store.url"


@pytest.mark.postgres
class TestPostgresConsentLog(ConsentLogContract):
    @pytest.fixture
    async def log(self, postgres_url: str, postgres_schema: str) -> AsyncIterator[ConsentLog]:
        from consent_gateway.store.postgres import PostgresConsentLog

        log = open_log(f"{postgres_url}?schema={postgres_schema}")
        assert isinstance(log, PostgresConsentLog)
        await log.open()
        yield log
        await log.close()

    def _db(self, log: ConsentLog) -> Any:
        import psycopg

        from consent_gateway.store.postgres import PostgresConsentLog

        assert isinstance(log, PostgresConsentLog)
        conn = psycopg.connect(log._conninfo, autocommit=True)
        conn.execute(f'SET search_path TO "{log.schema}"')
        return conn

    def _partitions(self, log: ConsentLog, table: str = "events") -> list[str]:
        with self._db(log) as db:
            rows = db.execute(
                "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = %s::regclass AND c.relkind = 'r' ORDER BY 1",
                (table,),
            ).fetchall()
        return [r[0] for r in rows]

    async def tamper_edit(self, log: ConsentLog, event: ConsentEvent, **changes: Any) -> None:
        with self._db(log) as db:
            for column, value in changes.items():
                table = "event_personal" if column in PERSONAL_FIELDS else "events"
                stored = json.dumps(value) if isinstance(value, dict) else value
                db.execute(f"UPDATE {table} SET {column} = %s WHERE event_id = %s", (stored, event.event_id))

    async def tamper_delete(self, log: ConsentLog, event: ConsentEvent) -> None:
        with self._db(log) as db:
            db.execute("DELETE FROM events WHERE event_id = %s", (event.event_id,))

    async def tamper_insert_raw(self, log: ConsentLog, event: ConsentEvent) -> None:
        from consent_gateway.store.postgres_schema import RECORD_COLUMNS, create_partitions, month_start, record_row

        with self._db(log) as db:
            for statement in create_partitions(month_start(event.timestamp_ms)):
                db.execute(statement)
            columns = ", ".join(RECORD_COLUMNS)
            db.execute(
                f"INSERT INTO events ({columns}) VALUES ({', '.join(['%s'] * len(RECORD_COLUMNS))})",
                record_row(event),
            )

    async def tamper_anchor(self, log: ConsentLog, instance: str, head: ChainHead) -> None:
        with self._db(log) as db:
            db.execute(
                "INSERT INTO chain_anchors (instance_id, seq, hash, purged_at_ms, mac) VALUES (%s, %s, %s, 0, '')"
                " ON CONFLICT (instance_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = ''",
                (instance, head.seq, head.hash),
            )

    async def test_the_logs_own_head_record_reveals_a_truncated_tail(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        await self.tamper_delete(log, events[19])
        result = await log.verify()
        assert result.first_broken == "gw-1@20"

    async def test_events_are_partitioned_by_month_and_a_purge_drops_whole_months(self, log: ConsentLog) -> None:
        months = [BASE_MS, BASE_MS + 31 * DAY_MS, BASE_MS + 59 * DAY_MS]  # January, February, March 2026
        events = chained([make_event(i, timestamp_ms=months[i % 3] + i) for i in range(30)])
        await log.append(events)
        assert self._partitions(log) == ["events_p202601", "events_p202602", "events_p202603"]
        # i % 3 == 0 lands in January: chain positions 1, 4, 7… so only seq 1 is a prefix of the chain.
        first_feb = BASE_MS + 31 * DAY_MS
        result = await log.purge(events_before_ms=first_feb, ip_before_ms=0)
        assert result.events_deleted == 1  # January keeps its partition: later links of the chain live there
        in_order = chained([make_event(i, timestamp_ms=months[i // 10] + i) for i in range(30)], "gw-2")
        await log.append(in_order)
        result = await log.purge(events_before_ms=BASE_MS + 59 * DAY_MS, ip_before_ms=0)
        assert "events_p202601" in self._partitions(log)  # still holds gw-1's later links
        assert (await log.verify()).ok
        await self.assert_counters_match_a_scan(log)
        chain_2 = [e for e in await log.history("consent-0") if e.instance_id == "gw-2"]
        assert all(e.timestamp_ms >= BASE_MS + 59 * DAY_MS for e in chain_2)

    async def test_a_purge_of_whole_months_drops_their_partitions(self, log: ConsentLog) -> None:
        months = [BASE_MS, BASE_MS + 31 * DAY_MS, BASE_MS + 59 * DAY_MS]
        events = chained([make_event(i, timestamp_ms=months[i // 10] + i) for i in range(30)])
        await log.append(events)
        result = await log.purge(events_before_ms=months[2], ip_before_ms=0)
        assert result.events_deleted == 20
        assert self._partitions(log, "event_personal") == ["event_personal_p202603"]
        assert self._partitions(log) == ["events_p202603"]
        assert (await log.verify()).ok
        await self.assert_counters_match_a_scan(log)
        assert await log.daily_counts(EventFilter(until_ms=months[2])) == []
        # A late event of a dropped month (replayed from a spool) gets its partition back.
        chain = EventChain("gw-1", (await log.chain_heads())["gw-1"])
        late = chain.append(make_event(77, timestamp_ms=months[0] + 5))
        await log.append([late])
        assert await log.get(late.event_id) == late
        await self.assert_counters_match_a_scan(log)  # its visitor counts in the month again, once

    async def test_erasure_deletes_the_personal_row_and_keeps_the_chained_record(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        target = {e.event_id for e in events if e.consent_id == "consent-4"}
        await log.erase("consent-4")
        with self._db(log) as db:
            left = {r[0] for r in db.execute("SELECT event_id FROM event_personal")}
            records = {r[0] for r in db.execute("SELECT event_id FROM events")}
        assert not target & left
        assert target <= records
        assert (await log.verify()).ok

    async def test_a_database_from_before_the_visitor_counters_counts_its_visitors_on_migration(
        self, log: ConsentLog, events: list[ConsentEvent]
    ) -> None:
        from consent_gateway.store.postgres import MIGRATIONS

        with self._db(log) as db:  # as the version before per-visitor counters left it
            db.execute("DELETE FROM aggregates WHERE dim LIKE 'visitor-%'")
            db.execute("DELETE FROM schema_version WHERE version >= %s", (len(MIGRATIONS),))
        upgraded = open_log(log.url)
        await upgraded.open()
        try:
            assert await upgraded.visitor_stats(EventFilter(), period="month") == visitor_stats_of(events, "month")
            await self.assert_counters_match_a_scan(upgraded)
        finally:
            await upgraded.close()

    async def test_schema_version_and_a_newer_schema_is_refused(self, log: ConsentLog) -> None:
        from consent_gateway.store.postgres import MIGRATIONS

        again = open_log(log.url)
        await again.open()  # a second open does not migrate twice
        await again.close()
        with self._db(log) as db:
            assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
            db.execute("INSERT INTO schema_version (version) VALUES (99)")
        newer = open_log(log.url)
        with pytest.raises(StoreUnavailable, match="newer"):
            await newer.open()
        await newer.close()

    async def test_every_dashboard_filter_has_an_index(self, log: ConsentLog) -> None:
        with self._db(log) as db:
            rows = db.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events'"
            ).fetchall()
        indexed = " ".join(r[0] for r in rows)
        for column in ("timestamp_ms", "consent_id", "action", "country", "browser_family", "device_type"):
            assert f"({column}" in indexed, column
        assert "(policy_version" in indexed and "gin (categories" in indexed

    async def test_an_unreachable_postgres_is_store_unavailable_without_its_password(self) -> None:
        from tests.conftest import free_port

        log = open_log(f"postgresql://cg:s3cret-password@127.0.0.1:{free_port()}/consent")
        with pytest.raises(StoreUnavailable) as opening:
            await log.open()
        health = await log.health()
        assert health["ok"] is False
        for text in (str(opening.value), str(health)):
            assert "s3cret" not in text


def test_open_log_refuses_an_unknown_scheme() -> None:
    from consent_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="store.url"):
        open_log("mysql://localhost/consent")


def test_event_dicts_round_trip() -> None:
    event = chained([make_event(3)])[0]
    from consent_gateway.events import event_from_dict

    assert event_from_dict(json.loads(json.dumps(event_to_dict(event)))) == event
