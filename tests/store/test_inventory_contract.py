"""The inventory's contract, on every backend: SQLite, a real Redis, a real Redis Cluster, a real PostgreSQL.

Merges are commutative and shared: whatever order instances flush in, every instance reads the same
inventory, and it outlives the connection that wrote it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from consent_gateway.inventory.records import (
    COOKIE,
    HOST,
    MAX_SAMPLES,
    STORAGE,
    UNCLASSIFIED,
    VIOLATION,
    InventoryEntry,
    InventoryQuery,
    element_bit,
    key_of,
    merge_all,
)
from consent_gateway.store import ConsentLog, open_log
from consent_gateway.store.redis import RedisConsentLog

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def host(name: str, *, vendor: str = UNCLASSIFIED, at: int = T0, held: int = 1, allowed: int = 0,
         kinds: tuple[str, ...] = ("script",), samples: tuple[str, ...] = ("/",)) -> InventoryEntry:
    bits = 0
    for kind in kinds:
        bits |= element_bit(kind)
    return InventoryEntry(HOST, name, name, vendor, count=held + allowed, held=held, allowed=allowed,
                          element_kinds=bits, samples=samples, first_seen_ms=at, last_seen_ms=at)


def cookie(name: str, *, vendor: str = "", at: int = T0, dropped: int = 0, passed: int = 1, capped: int = 0,
           max_age: int | None = 3600) -> InventoryEntry:
    detail = {"domain": ".shop.example", "path": "/", "max_age_s": max_age, "http_only": True, "secure": True,
              "same_site": "Lax"}
    return InventoryEntry(COOKIE, key_of(name, ".shop.example", "/"), name, vendor, count=dropped + passed,
                          dropped=dropped, passed=passed, capped=capped, detail=detail, first_seen_ms=at,
                          last_seen_ms=at)


def storage(name: str, area: str = "localStorage", *, vendor: str = "", at: int = T0) -> InventoryEntry:
    return InventoryEntry(STORAGE, key_of(area, name), name, vendor, count=1, detail={"area": area},
                          first_seen_ms=at, last_seen_ms=at)


def violation(blocked: str, page: str = "/", *, at: int = T0) -> InventoryEntry:
    detail = {"directive": "script-src-elem", "page_path": page, "consent_state": "none"}
    return InventoryEntry(VIOLATION, key_of(blocked, "script-src-elem", page, "none"), blocked, UNCLASSIFIED,
                          count=1, detail=detail, samples=(page,), first_seen_ms=at, last_seen_ms=at)


def as_dicts(entries: list[InventoryEntry]) -> list[dict[str, Any]]:
    return [e.as_dict() for e in entries]


class InventoryContract:
    """What every backend's inventory must do. Subclasses provide ``url`` (a fresh store of the test's own)."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    async def log(self, url: str) -> AsyncIterator[ConsentLog]:
        log = open_log(url)
        await log.open()
        yield log
        await log.close()

    @pytest.fixture
    async def other(self, url: str, log: ConsentLog) -> AsyncIterator[ConsentLog]:
        """A second connection to the same store, as another gateway instance has."""
        other = open_log(url)
        await other.open()
        yield other
        await other.close()

    async def test_an_entry_of_each_kind_comes_back_as_merged(self, log: ConsentLog) -> None:
        entries = [
            host("tracker.example", kinds=("script", "img"), samples=("/a", "/b")),
            cookie("_ga", vendor="google-analytics", dropped=2, passed=3, capped=1, max_age=None),
            storage("amplitude_id", "sessionStorage"),
            violation("late.example", "/shop"),
        ]
        await log.merge_inventory(entries)
        page = await log.read_inventory(InventoryQuery())
        assert page.total == 4
        assert as_dicts(sorted(page.entries, key=lambda e: e.kind)) == as_dicts(sorted(entries, key=lambda e: e.kind))
        read_host = next(e for e in page.entries if e.kind == HOST)
        assert read_host.elements == ("script", "img")
        assert read_host.samples == ("/a", "/b")
        read_cookie = next(e for e in page.entries if e.kind == COOKIE)
        assert read_cookie.detail["max_age_s"] is None and read_cookie.detail["same_site"] == "Lax"

    async def test_merges_add_counts_widen_the_seen_window_and_keep_the_latest_description(
        self, log: ConsentLog
    ) -> None:
        await log.merge_inventory([host("t.example", at=T0 + 5000, held=2, kinds=("img",), samples=("/m", "/z"))])
        await log.merge_inventory([host("t.example", vendor="hotjar", at=T0 + 9000, held=0, allowed=3,
                                        kinds=("script",), samples=("/a",))])
        await log.merge_inventory([host("t.example", at=T0, held=1, samples=("/b",))])  # older, arriving late
        (entry,) = (await log.read_inventory(InventoryQuery(kind=HOST))).entries
        assert (entry.count, entry.held, entry.allowed) == (6, 3, 3)
        assert (entry.first_seen_ms, entry.last_seen_ms) == (T0, T0 + 9000)
        assert entry.vendor == "hotjar"  # the most recent sighting's classification
        assert set(entry.elements) == {"img", "script"}
        assert entry.samples == ("/a", "/b", "/m", "/z")

    async def test_samples_keep_the_smallest_distinct_paths_whatever_the_merge_order(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        paths = [f"/p/{i:02d}" for i in range(12)]
        batches = [host("a.example", samples=tuple(paths[i : i + 3])) for i in range(0, 12, 3)]
        for batch in reversed(batches):
            await log.merge_inventory([batch])
        for batch in batches:
            await other.merge_inventory([host("b.example", samples=batch.samples)])
        entries = {e.name: e for e in (await log.read_inventory(InventoryQuery())).entries}
        assert entries["a.example"].samples == tuple(paths[:MAX_SAMPLES])
        assert entries["b.example"].samples == entries["a.example"].samples

    async def test_a_batch_naming_one_key_twice_counts_both(self, log: ConsentLog) -> None:
        await log.merge_inventory([cookie("sid", passed=1), cookie("sid", dropped=1, passed=0, at=T0 + 1)])
        (entry,) = (await log.read_inventory(InventoryQuery(kind=COOKIE))).entries
        assert (entry.count, entry.dropped, entry.passed) == (2, 1, 1)

    async def test_instances_flushing_at_once_lose_no_count(self, log: ConsentLog, other: ConsentLog) -> None:
        async def flush(store: ConsentLog, n: int) -> None:
            for i in range(n):
                await store.merge_inventory([host("busy.example", at=T0 + i), cookie("_ga", at=T0 + i)])

        await asyncio.gather(flush(log, 15), flush(other, 15))
        entries = {e.kind: e for e in (await other.read_inventory(InventoryQuery())).entries}
        assert entries[HOST].count == 30
        assert entries[COOKIE].count == 30

    async def test_the_inventory_is_shared_and_outlives_the_connection_that_wrote_it(
        self, url: str, log: ConsentLog, other: ConsentLog
    ) -> None:
        await log.merge_inventory([host("cdn.tracker.example"), storage("_hjSession", "cookie")])
        assert as_dicts((await other.read_inventory(InventoryQuery())).entries) == as_dicts(
            (await log.read_inventory(InventoryQuery())).entries
        )
        await log.close()
        reopened = open_log(url)
        await reopened.open()
        try:
            names = {e.name for e in (await reopened.read_inventory(InventoryQuery())).entries}
        finally:
            await reopened.close()
        assert names == {"cdn.tracker.example", "_hjSession"}

    async def test_reads_select_by_kind_vendor_unclassified_and_time_and_page_most_recent_first(
        self, log: ConsentLog
    ) -> None:
        await log.merge_inventory([
            host("old.example", at=T0),
            host("www.google-analytics.com", vendor="google-analytics", at=T0 + 10),
            cookie("_ga", vendor="google-analytics", at=T0 + 20),
            cookie("mystery", at=T0 + 30),
            storage("ajs_user_id", at=T0 + 40),
            violation("late.example", at=T0 + 50),
        ])  # fmt: skip

        async def names(**query: Any) -> list[str]:
            return [e.name for e in (await log.read_inventory(InventoryQuery(**query))).entries]

        assert await names() == ["late.example", "ajs_user_id", "mystery", "_ga", "www.google-analytics.com",
                                 "old.example"]
        assert await names(kind=HOST) == ["www.google-analytics.com", "old.example"]
        assert await names(vendor="google-analytics") == ["_ga", "www.google-analytics.com"]
        assert await names(unclassified_only=True) == ["late.example", "ajs_user_id", "mystery", "old.example"]
        assert await names(kind=COOKIE, unclassified_only=True) == ["mystery"]
        assert await names(seen_since_ms=T0 + 30) == ["late.example", "ajs_user_id", "mystery"]
        page = await log.read_inventory(InventoryQuery(limit=2, offset=2))
        assert [e.name for e in page.entries] == ["mystery", "_ga"]
        assert page.total == 6
        assert (await log.read_inventory(InventoryQuery(kind=VIOLATION, offset=5))).entries == []

    async def test_the_size_counts_entries_per_kind_and_unclassified_hosts(self, log: ConsentLog) -> None:
        assert (await log.inventory_size()).total == 0
        await log.merge_inventory([host("a.example"), host("b.example"), host("c.example", vendor="hotjar"),
                                   cookie("_ga"), violation("a.example")])
        size = await log.inventory_size()
        assert size.by_kind == {HOST: 3, COOKIE: 1, VIOLATION: 1}
        assert size.unclassified_hosts == 2
        assert size.total == 5

    async def test_names_with_quotes_unicode_and_json_characters_round_trip(self, log: ConsentLog) -> None:
        odd = ['we"ird', "caf\u00e9", "\u6f22\u5b57", "a\\b", "{}[]", "emoji \U0001f36a", "%41"]
        await log.merge_inventory([storage(name, at=T0 + i) for i, name in enumerate(odd)])
        await log.merge_inventory([host("h.example", samples=tuple(f"/{name}" for name in odd[:3]))])
        entries = (await log.read_inventory(InventoryQuery())).entries
        assert sorted(e.name for e in entries if e.kind == STORAGE) == sorted(odd)
        assert next(e for e in entries if e.kind == HOST).samples == tuple(sorted(f"/{n}" for n in odd[:3]))

    async def test_pruning_removes_only_entries_not_seen_since_the_cutoff(
        self, log: ConsentLog, other: ConsentLog
    ) -> None:
        await log.merge_inventory([host("old.example", at=T0), cookie("old", at=T0 + 1), storage("k", at=T0 + 2),
                                   violation("v.example", at=T0 + 3), host("new.example", at=T0 + 10)])
        await other.merge_inventory([host("old.example", at=T0 + 20)])  # seen again by another instance
        assert await log.prune_inventory(seen_before_ms=T0 + 5) == 3
        names = sorted(e.name for e in (await log.read_inventory(InventoryQuery())).entries)
        assert names == ["new.example", "old.example"]
        assert await log.prune_inventory(seen_before_ms=T0 + 5) == 0

    async def test_an_empty_batch_writes_nothing(self, log: ConsentLog) -> None:
        await log.merge_inventory([])
        assert (await log.read_inventory(InventoryQuery())).total == 0

    async def test_the_store_ends_as_the_python_merge_of_everything_it_took(self, log: ConsentLog) -> None:
        batches = [
            [host("x.example", at=T0 + i, held=i % 2, allowed=1 - i % 2, kinds=(("img", "link", "a")[i % 3],),
                  samples=(f"/{i % 7}",)), cookie("c", at=T0 + 100 - i, dropped=i % 2, passed=1 - i % 2)]
            for i in range(9)
        ]
        for batch in batches:
            await log.merge_inventory(batch)
        expected = sorted(merge_all(e for batch in batches for e in batch), key=lambda e: e.kind)
        got = sorted((await log.read_inventory(InventoryQuery())).entries, key=lambda e: e.kind)
        assert as_dicts(got) == as_dicts(expected)


def test_a_bad_query_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown inventory kind 'tracker'"):
        InventoryQuery(kind="tracker")
    with pytest.raises(ValueError, match="limit"):
        InventoryQuery(limit=0)
    with pytest.raises(ValueError, match="offset"):
        InventoryQuery(offset=-1)


class TestSQLiteInventory(InventoryContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'data' / 'consent.db'}"


class TestRedisInventory(InventoryContract):
    @pytest.fixture
    def url(self, redis_url: str, redis_prefix: str) -> str:
        return f"{redis_url}?prefix={redis_prefix}"


class TestRedisClusterInventory(InventoryContract):
    @pytest.fixture
    def url(self, redis_cluster_url: str) -> AsyncIterator[str]:  # type: ignore[misc]
        prefix = f"cgtest-{uuid.uuid4().hex[:12]}"
        yield f"{redis_cluster_url}?prefix={prefix}"
        raw = redis_sync.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster", "redis"))
        try:
            for key in list(raw.scan_iter(match="{" + prefix + "}:*", count=1000)):
                raw.delete(key)
        finally:
            raw.close()

    async def test_the_inventory_lives_in_the_logs_slot(self, log: ConsentLog, redis_cluster_url: str) -> None:
        assert isinstance(log, RedisConsentLog)
        await log.merge_inventory([host("a.example"), cookie("_ga"), storage("k"), violation("v.example")])
        await log.state_put("probe", "1", 60_000)
        with redis_sync.RedisCluster.from_url(log._client_url, decode_responses=True) as raw:
            keys = list(raw.scan_iter(match="{" + log.prefix + "}:*", count=1000))
            slots = {raw.keyslot(k) for k in keys}
        assert {k for k in keys if ":inv:" in k} == {"{" + log.prefix + "}:inv:" + k for k in
                                                     (HOST, COOKIE, STORAGE, VIOLATION)}
        assert len(slots) == 1


class TestPostgresInventory(InventoryContract):
    @pytest.fixture
    def url(self, postgres_url: str, postgres_schema: str) -> str:
        return f"{postgres_url}?schema={postgres_schema}"
