"""The consent log at scale: load N synthetic events, then time what the privacy team and retention do.

    python benchmarks/bench_scale.py [--backend sqlite|redis|postgres|all] [--events 10000000] [--days 395]
                                     [--batch 2000] [--redis-url redis://127.0.0.1:6379/0]
                                     [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
                                     [--postgres-server] [--redis-server] [--loader append|copy]

Events go in through the product's own append path (``EventChain`` chains and MACs each event under a log
key, ``ConsentLog.append`` stores a batch in one transaction or script), spread over ``--days`` days ending
today, from four writer instances. Distributions meant to look like a large French site: user agents and
countries drawn from Zipf laws, 3 to 6 categories per site (one site per run, chosen by the seed) with their
own grant rates, a few vendors chosen by name, three policy versions over time, daily and weekly rhythms and
bursts (campaign days at 3-8x the volume), returning visitors.

Then, timed: the dashboard overview (the store calls of ``admin/reports.py``: stats by day, country,
browser, device, policy version and vendor, daily counts, health) over 30 and 365 days; a filtered search
page (country + browser, 50 rows, and the page after); a visitor's history; a CSV export of one day
(``export.stream_export``); a retention purge of the oldest whole month (and the days before it);
``logs verify`` with a checkpoint. It reports load rows/s, the store's size per million events and each timing.

The Redis run uses a key prefix of its own, the PostgreSQL run a schema of its own, the SQLite run a
temporary file; all are deleted afterwards (``--keep`` keeps them). On a shared machine, use a smaller
``--events`` and say so: the timings that depend on the log's size are extrapolated honestly only if you
state N.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import contextlib
import itertools
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consent_gateway.events import ConsentEvent, EventChain, LogKeys  # noqa: E402
from consent_gateway.export import ExportColumns, stream_export  # noqa: E402
from consent_gateway.store import Checkpoint, ConsentLog, EventFilter, open_log  # noqa: E402

DAY_MS = 86_400_000
LOG_KEY = "bench-scale-log-key-0123456789-abcdefghijklmnopqrstuvwxyz"
LOG_KEYS = LogKeys([LOG_KEY])
INSTANCES = 4

# (browser family, device, user agent), most frequent first: drawn with Zipf weights.
AGENTS = [
    ("Chrome", "desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0"),
    ("Mobile Safari", "mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"),
    ("Chrome Mobile", "mobile", "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/124.0 Mobile"),
    ("Firefox", "desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    ("Edge", "desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Edg/124.0"),
    ("Safari", "desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Version/17.4 Safari/605.1.15"),
    ("Samsung Internet", "mobile", "Mozilla/5.0 (Linux; Android 14; SM-S918B) SamsungBrowser/24.0"),
    ("Mobile Safari", "tablet", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Mobile/15E148"),
    ("Chrome Mobile", "tablet", "Mozilla/5.0 (Linux; Android 13; SM-X700) Chrome/124.0"),
    ("Opera", "desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 OPR/109.0"),
    ("Firefox Mobile", "mobile", "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"),
    ("Chrome", "desktop", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0"),
    ("Yandex Browser", "desktop", "Mozilla/5.0 (Windows NT 10.0) Chrome/122.0 YaBrowser/24.1"),
    ("UC Browser", "mobile", "Mozilla/5.0 (Linux; U; Android 10) UCBrowser/13.4 Mobile"),
    (None, "desktop", "curl/8.5.0"),
]
COUNTRIES = ["FR", "BE", "CH", "DE", "CA", "US", "ES", "IT", "GB", "MA", "LU", "NL", "PT", "SN", "CI", "TN", "DZ"]
COUNTRIES += [None]
CATEGORIES = [("analytics", 0.62), ("marketing", 0.31), ("preferences", 0.55), ("social", 0.4),
              ("personalisation", 0.45), ("session_replay", 0.22)]  # fmt: skip
VENDORS = ["youtube", "google-analytics", "hotjar", "facebook-pixel", "matomo", "vimeo"]
ACTIONS = ["consent-given"] * 14 + ["consent-updated"] * 3 + ["consent-withdrawn", "gpc-applied"]


#: the throwaway server's settings (--postgres-server): room for a bulk load (buffers, WAL between checkpoints);
#: commits stay durable (fsync and synchronous_commit on), as the append-path measurements need
POSTGRES_SETTINGS = {
    "shared_buffers": "1GB",
    "maintenance_work_mem": "512MB",
    "work_mem": "64MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_connections": "50",
}


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (k**s) for k in range(1, n + 1)]


class Synthetic:
    """Events of one synthetic site: deterministic for a seed."""

    def __init__(self, events: int, days: int, seed: int = 13) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
        self.events = events
        self.days = days
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        self.first_day_ms = today - (days - 1) * DAY_MS
        self.categories = CATEGORIES[: self.rng.randint(3, 6)]
        # Events per day: weekly rhythm, slow growth, and campaign bursts.
        weights = []
        for d in range(days):
            weekday = (self.first_day_ms // DAY_MS + d + 3) % 7  # 0 = Monday
            w = (0.75 if weekday >= 5 else 1.0) * (1 + d / days)
            if self.rng.random() < 0.04:
                w *= self.rng.uniform(3, 8)
            weights.append(w)
        total = sum(weights)
        self.per_day = [int(events * w / total) for w in weights]
        self.per_day[-1] += events - sum(self.per_day)
        self.agent_weights = zipf_weights(len(AGENTS))
        self.country_weights = zipf_weights(len(COUNTRIES), 1.4)
        self.returning: list[str] = []

    def policy(self, day: int) -> str:
        return "2025-03" if day < self.days // 3 else "2025-09" if day < 2 * self.days // 3 else "2026-02"

    def __iter__(self) -> Iterator[ConsentEvent]:
        rng = self.rng
        for day, count in enumerate(self.per_day):
            start = self.first_day_ms + day * DAY_MS
            # Most consent events come in the day's busy hours: a triangle peaking at 13:00 UTC.
            stamps = sorted(int(rng.triangular(6, 23.99, 13) * 3_600_000) + start for _ in range(count))
            agents = rng.choices(AGENTS, self.agent_weights, k=count)
            countries = rng.choices(COUNTRIES, self.country_weights, k=count)
            for ts, (browser, device, ua), country in zip(stamps, agents, countries, strict=True):
                if self.returning and rng.random() < 0.15:
                    consent_id = rng.choice(self.returning)
                else:
                    consent_id = uuid.UUID(int=rng.getrandbits(128)).hex
                    if len(self.returning) < 50_000:
                        self.returning.append(consent_id)
                    else:
                        self.returning[rng.randrange(50_000)] = consent_id
                action = rng.choice(ACTIONS)
                withdrawn = action == "consent-withdrawn"
                categories = {c: (not withdrawn) and rng.random() < p for c, p in self.categories}
                vendors = {v: rng.random() < 0.5 for v in rng.sample(VENDORS, rng.choice((0, 0, 0, 1, 2)))}
                yield ConsentEvent(
                    event_id=f"{ts:012x}{rng.getrandbits(80):020x}",
                    consent_id=consent_id,
                    action=action,
                    categories=categories,
                    vendors=vendors,
                    policy_version=self.policy(day),
                    banner_version="0123456789abcdef",
                    timestamp_ms=ts,
                    page_path=rng.choice(("/", "/actualites", "/sport", "/meteo", "/abonnement")),
                    referrer_host=rng.choice((None, "www.google.com", "www.qwant.com", "t.co")),
                    ip=f"203.0.{rng.randrange(256)}.0",
                    user_agent=ua,
                    browser_family=browser,
                    browser_version="124",
                    os_family=None,
                    os_version=None,
                    device_type=device,
                    country=country,
                    is_eu=country in ("FR", "BE", "DE", "ES", "IT", "LU", "NL", "PT"),
                    region_rule="opt-in",
                    gpc=action == "gpc-applied",
                )


async def load(log: ConsentLog, synthetic: Synthetic, batch: int, *, bulk: bool = False) -> dict[str, float]:
    """Load every event; the product's own path (chaining + ``append``) is timed apart from making the
    synthetic events, which costs this script about as much again per event. With ``bulk`` (PostgreSQL),
    chained events are COPYed in by ``bulk_postgres.PostgresBulkLoader`` (the same rows, proven by
    tests/store/test_bulk_load.py) in chunks of ``batch``, the counters and heads written at the end."""
    chains = [EventChain(f"bench-scale-{i}", keys=LOG_KEYS) for i in range(INSTANCES)]
    loader = None
    if bulk:
        from benchmarks.bulk_postgres import PostgresBulkLoader
        from consent_gateway.store.postgres import PostgresConsentLog

        assert isinstance(log, PostgresConsentLog), "the bulk loader is PostgreSQL's"
        loader = PostgresBulkLoader(log)
    loaded = 0
    path_s = 0.0
    start = time.perf_counter()
    events = iter(synthetic)
    reported = 0
    cpu_start = _cpu()
    synthetic_cpu = 0.0  # this thread's CPU making events: the bulk loader's writer thread works meanwhile
    try:
        while True:
            made_cpu = time.thread_time()
            made = list(itertools.islice(events, batch))
            synthetic_cpu += time.thread_time() - made_cpu
            if not made:
                break
            t0 = time.perf_counter()
            pending = [chains[(loaded + i) % INSTANCES].append(event) for i, event in enumerate(made)]
            await (log.append(pending) if loader is None else loader.add(pending))
            path_s += time.perf_counter() - t0
            loaded += len(pending)
            if loaded - reported >= 100_000:
                reported = loaded
                rate = loaded / (time.perf_counter() - start)
                print(
                    f"  … {loaded:,} events, {rate:,.0f}/s, load average {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        if loader is not None:
            t0 = time.perf_counter()
            await loader.finish()
            path_s += time.perf_counter() - t0
        path_cpu = _cpu() - cpu_start - synthetic_cpu
    finally:
        if loader is not None:
            loader.close()
    elapsed = time.perf_counter() - start
    return {
        "events": loaded,
        "load_s": elapsed,
        "load_per_s": loaded / elapsed,
        "append_path_per_s": loaded / path_s,
        "load_cpu_us": path_cpu / loaded * 1e6,
        "synthetic_cpu_us": synthetic_cpu / loaded * 1e6,
    }


def _cpu() -> float:
    """CPU seconds of this process, every thread (the SQLite backend writes on a thread of its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(what: str, results: dict[str, Any], coro: Any) -> Any:
    start = time.perf_counter()
    value = await coro
    results[what] = time.perf_counter() - start
    # printed at once: a step that fails an hour into a large run must not take the earlier figures with it
    print(f"  {what[:-2]}: {results[what] * 1000:,.1f} ms", file=sys.stderr, flush=True)
    return value


async def overview(log: ConsentLog, days: int) -> None:
    """The store calls of the dashboard's overview page for the last ``days`` whole days."""
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    filters = EventFilter(since_ms=today - (days - 1) * DAY_MS, until_ms=today + DAY_MS)
    for by in ("day", "country", "browser", "device", "policy_version", "vendor"):
        await log.stats(filters, by=by)
    await log.daily_counts(filters)
    await log.health()


async def measure(log: ConsentLog, synthetic: Synthetic) -> dict[str, Any]:
    results: dict[str, Any] = {}
    await timed("overview_30d_s", results, overview(log, 30))
    await timed("overview_365d_s", results, overview(log, 365))
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    search = EventFilter(since_ms=today - 29 * DAY_MS, country="DE", browser="Firefox")
    page = await timed("search_page_s", results, log.query(search, limit=50))
    if page.next_cursor:
        await timed("search_next_page_s", results, log.query(search, limit=50, cursor=page.next_cursor))
    await timed("search_count_s", results, log.count(search))
    # one filter that most events share or only a few have, alone over a year (a whole-days selection
    # with a filter is answered from the events' indexes, not from the day counters)
    year = today - 364 * DAY_MS
    rare = EventFilter(since_ms=year, action="consent-withdrawn")
    await timed("search_rare_action_page_s", results, log.query(rare, limit=50))
    results["count_action_year"] = await timed("count_action_year_s", results, log.count(rare))
    granted = EventFilter(since_ms=year, category=synthetic.categories[-1][0])
    results["count_category_year"] = await timed("count_category_year_s", results, log.count(granted))
    visitors = synthetic.returning[:20]
    start = time.perf_counter()
    for consent_id in visitors:
        await log.history(consent_id)
    results["history_s"] = (time.perf_counter() - start) / len(visitors)
    day = EventFilter(since_ms=today - 2 * DAY_MS, until_ms=today - DAY_MS)
    columns = ExportColumns(tuple(c for c, _ in synthetic.categories))

    async def export_day() -> int:
        return sum([len(chunk) async for chunk in stream_export(log.export(day), "csv", columns)])

    results["export_day_bytes"] = await timed("export_day_s", results, export_day())
    results["export_day_rows"] = await log.count(day)
    checkpoint = Checkpoint(heads=await log.chain_heads(), created_at_ms=int(time.time() * 1000))
    verified = await timed("verify_s", results, log.verify(checkpoint))
    results["verify_ok"] = verified.ok
    results["verify_per_s"] = verified.events_checked / results["verify_s"]
    # Retention: everything before the end of the first whole calendar month goes (the partial first month
    # and one whole one; on PostgreSQL their partitions are dropped).
    first = time.gmtime(synthetic.first_day_ms / 1000)
    year, month = first.tm_year, first.tm_mon
    for _ in range(2):
        year, month = year + (month == 12), month % 12 + 1
    cutoff = calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
    purged = await timed("purge_month_s", results, log.purge(events_before_ms=cutoff, ip_before_ms=0))
    results["purge_month_events"] = purged.events_deleted
    return results


def disk_bytes(backend: str, url: str, path: Path | None) -> int:
    if backend == "sqlite" and path is not None:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    if backend == "postgres":
        import psycopg

        base, schema = url.split("?schema=", 1)
        with psycopg.connect(base, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
        return int(row[0]) if row else 0
    import redis

    base, prefix = url.split("?prefix=", 1)
    total = 0
    # MEMORY USAGE samples a few fields of each large key (exact sizes of a hash of millions of fields take
    # minutes of the server's time); no socket timeout: a loaded machine answers slowly
    with redis.Redis.from_url(base, socket_timeout=None) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=5000))
        for i in range(0, len(keys), 5000):
            pipe = client.pipeline(transaction=False)
            for key in keys[i : i + 5000]:
                pipe.memory_usage(key)
            total += sum(int(n or 0) for n in pipe.execute())
    return total


def analyze_partitions(url: str) -> float:
    """ANALYZE each monthly partition, as autovacuum does by itself on a live log (a log loaded minutes ago
    has no statistics yet, and the planner then joins a visitor's events to every personal row); returns
    the seconds it took."""
    import psycopg

    base, schema = url.split("?schema=", 1)
    start = time.perf_counter()
    with psycopg.connect(base, autocommit=True) as conn:
        names = conn.execute(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
        for (name,) in names:
            conn.execute(f'ANALYZE "{schema}"."{name}"')
    return time.perf_counter() - start


def cleanup(backend: str, url: str, path: Path | None) -> None:
    if backend == "sqlite" and path is not None:
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    elif backend == "postgres":
        import psycopg

        base, schema = url.split("?schema=", 1)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    elif backend == "redis":
        import redis

        base, prefix = url.split("?prefix=", 1)
        with redis.Redis.from_url(base, socket_timeout=None) as client:
            keys = list(client.scan_iter(match="{" + prefix + "}:*", count=5000))
            for i in range(0, len(keys), 5000):
                client.delete(*keys[i : i + 5000])


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    path: Path | None = None
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="cg-scale-")) / "consent.db"
        url = f"sqlite:///{path}"
    elif backend == "redis":
        url = f"{args.redis_url}?prefix=bench-scale-{tag}"
    else:
        url = f"{args.postgres_url}?schema=bench_scale_{tag}"
    # Redis: a loaded machine may take longer than the gateway's 5 s to answer one purge script
    log = open_log(url, log_keys=LOG_KEYS, **({"socket_timeout_s": 120.0} if backend == "redis" else {}))
    await log.open()
    synthetic = Synthetic(args.events, args.days)
    bulk = backend == "postgres" and args.loader == "copy"
    try:
        how = "COPY (bulk loader)" if bulk else "the append path"
        print(f"{backend}: loading {args.events:,} events over {args.days} days through {how}…", file=sys.stderr)
        results = await load(log, synthetic, args.batch, bulk=bulk)
        results["loader"] = "copy" if bulk else "append"
        results["load_average_after_load"] = os.getloadavg()[0]
        results["disk_bytes_per_million"] = disk_bytes(backend, url, path) / results["events"] * 1e6
        if backend == "postgres":
            results["analyze_s"] = analyze_partitions(url)
        results.update(await measure(log, synthetic))
        results["load_average_after_measure"] = os.getloadavg()[0]
    finally:
        await log.close()
        if not args.keep:
            cleanup(backend, url, path)
    return results


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A redis-server of this run's own on a free loopback port, in a temporary folder, removed afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("--redis-server: redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="cg-scale-redis-")
    process = subprocess.Popen(  # noqa: S603 - redis-server found on PATH, our own arguments
        [
            server,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("--redis-server: redis-server did not start") from None
                time.sleep(0.05)
        used = client.info("memory")
        print(f"redis: a throwaway redis-server on port {port} ({used['used_memory_human']})", file=sys.stderr)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def report(backend: str, r: dict[str, Any]) -> str:
    ms = {k: v * 1000 for k, v in r.items() if k.endswith("_s") and k != "load_s"}
    return (
        f"{backend:9} {r['events']:,} events: load {r['load_per_s']:,.0f}/s; the append path alone (chaining +"
        f" append) {r['append_path_per_s']:,.0f}/s, {r['load_cpu_us']:.0f} µs CPU/event in this process"
        f" (making the synthetic events {r.get('synthetic_cpu_us', 0):.0f} µs more);"
        f" {r['disk_bytes_per_million'] / 1e6:,.0f} MB per million events"
        + (f"; ANALYZE of the partitions {r['analyze_s']:.1f} s" if "analyze_s" in r else "")
        + f"; load average {r['load_average_after_load']:.1f} after the load\n"
        f"          overview 30 d {ms['overview_30d_s']:.0f} ms, 365 d {ms['overview_365d_s']:.0f} ms;"
        f" search page {ms['search_page_s']:.1f} ms (next {ms.get('search_next_page_s', 0):.1f} ms,"
        f" count {ms['search_count_s']:.0f} ms); visitor history {ms['history_s']:.1f} ms\n"
        f"          over a year: a page of one rare action {ms['search_rare_action_page_s']:.1f} ms, its count"
        f" ({r['count_action_year']:,}) {ms['count_action_year_s']:.0f} ms, the count of one granted category"
        f" ({r['count_category_year']:,}) {ms['count_category_year_s']:.0f} ms\n"
        f"          CSV export of one day ({r['export_day_rows']:,} rows) {ms['export_day_s']:.0f} ms;"
        f" verify with checkpoint {ms['verify_s'] / 1000:.1f} s ({r['verify_per_s']:,.0f} events/s,"
        f" {'OK' if r['verify_ok'] else 'BROKEN'}); purge of the oldest months ({r['purge_month_events']:,}"
        f" events) {ms['purge_month_s']:.0f} ms"
        + (f"\n          throwaway server: {r['server_settings']}" if "server_settings" in r else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "redis", "postgres", "all"], default="all")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=395, help="days the events span, ending today")
    parser.add_argument("--batch", type=int, default=2000, help="events per append (one transaction)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("CONSENT_GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CONSENT_GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--loader",
        choices=["append", "copy"],
        default="append",
        help="PostgreSQL: the append path, or COPY into the empty log's tables (bulk_postgres.py: the same rows)",
    )
    parser.add_argument(
        "--redis-server",
        action="store_true",
        help="start a throwaway redis-server on a free loopback port for the Redis run (AOF, fsync every second),"
        " stopped afterwards: a large run never fills a Redis that others use",
    )
    parser.add_argument(
        "--postgres-server",
        action="store_true",
        help="start a throwaway PostgreSQL (initdb + pg_ctl in a temporary folder, free loopback port) for the"
        " PostgreSQL run, with settings for a bulk run (POSTGRES_SETTINGS; fsync and synchronous_commit on),"
        " stopped and deleted afterwards: a large run shares no buffers or disk with others",
    )
    parser.add_argument("--postgres-dir", help="the folder the throwaway server's data goes in (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the loaded log (prints where)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args()
    # stopped by a signal, the run still removes what it made (its schema, keys, file, redis-server)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    backends = ["sqlite", "redis", "postgres"] if args.backend == "all" else [args.backend]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    figures = {}
    for backend in backends:
        if backend == "redis" and args.redis_server:
            with throwaway_redis() as url:
                args.redis_url = url
                figures[backend] = results = asyncio.run(run_backend(backend, args))
        elif backend == "postgres" and args.postgres_server:
            from benchmarks.throwaway_postgres import throwaway_postgres

            settings = ", ".join(f"{k}={v}" for k, v in POSTGRES_SETTINGS.items())
            with throwaway_postgres(POSTGRES_SETTINGS, parent=args.postgres_dir) as url:
                print(f"postgres: a throwaway server at {url} ({settings})", file=sys.stderr, flush=True)
                args.postgres_url = url
                figures[backend] = results = asyncio.run(run_backend(backend, args))
                results["server_settings"] = settings
        else:
            figures[backend] = results = asyncio.run(run_backend(backend, args))
        print(report(backend, results), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"events": args.events, "backends": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
