"""Durable consent events per second through ``EventRecorder``, on SQLite, Redis and PostgreSQL.

Many concurrent visitors each ``await recorder.record(event)`` in a loop, as the consent route does; an
event counts once ``record`` has returned, i.e. once it is committed (SQLite ``synchronous=FULL``: fsync'd;
Redis: acknowledged by the server, durable as far as its persistence goes). Chaining (hashes, salted
commitments) is included: it is part of the cost of every real event.

    python benchmarks/bench_store.py [--backend sqlite|redis|postgres|both|all] [--events 100000] [--visitors 4000]
                                     [--batch 1000] [--redis-url redis://127.0.0.1:6379/0] [--one-per-commit]
                                     [--repeat 3] [--default-gc]

The Redis run uses a key prefix of its own and deletes its keys afterwards (never the whole database); the
PostgreSQL run (``--postgres-url``) a schema of its own, dropped afterwards.
Targets (issue 4): SQLite >= 25,000 events/s, Redis >= 20,000 events/s.

The process's garbage collector is set as a serving gateway sets it (``serving.settle_garbage_collector``:
what was loaded before serving, here the events made up front, frozen out of the collector's sight, young
objects collected every 7,000 allocations): with Python's defaults, full collections walk the 100,000 events
made up front, which a gateway never holds, at ~7 µs of the event loop's CPU per event. ``--default-gc``
keeps Python's defaults, for contrast.

Read the CPU figures with the rate: chaining runs on the event loop and SQLite's commits on a thread of
their own, so on an otherwise idle two-core machine the process uses well over one core; when it uses
less while neither is saturated, other processes are taking the CPU and the rate is understated.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consent_gateway.events import ConsentEvent, LogKeys  # noqa: E402
from consent_gateway.serving import settle_garbage_collector  # noqa: E402
from consent_gateway.store import ConsentLog, EventFilter, open_log  # noqa: E402
from consent_gateway.store.recorder import EventRecorder  # noqa: E402

TARGETS = {"sqlite": 25_000, "redis": 20_000, "postgres": 25_000}
#: the keyed chain, as the gateway runs it: each event also carries a MAC under the log key
LOG_KEYS = LogKeys(["bench-log-key-0123456789-abcdefghijklmnopqrstuvwxyz"])
UAS = [
    (
        "Chrome",
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    ),
    ("Mobile Safari", "mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile"),
    ("Firefox", "desktop", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
]


def make_events(n: int) -> list[ConsentEvent]:
    now = int(time.time() * 1000)
    events = []
    for i in range(n):
        browser, device, ua = UAS[i % len(UAS)]
        events.append(
            ConsentEvent(
                event_id=f"{now + i:012x}{os.urandom(10).hex()}",  # time-ordered, as routes.new_event_id makes them
                consent_id=uuid.uuid4().hex,
                action="consent-given",
                categories={"analytics": i % 3 != 0, "marketing": i % 4 == 0, "preferences": True},
                vendors={},
                policy_version="2026-01",
                banner_version="0123456789abcdef",
                timestamp_ms=now + i,
                page_path="/pricing",
                referrer_host="www.example.org",
                ip="203.0.113.0",  # truncated, as the default ip_mode stores it
                user_agent=ua,
                browser_family=browser,
                browser_version="120",
                os_family="Windows",
                os_version="10",
                device_type=device,
                country="FR",
                is_eu=True,
                region_rule="opt-in",
            )
        )
    return events


async def run(log: ConsentLog, events: list[ConsentEvent], visitors: int, batch: int, spool: Path) -> dict[str, float]:
    await log.open()
    recorder = EventRecorder(
        log, spool_path=spool, instance_id=f"bench-{uuid.uuid4().hex[:8]}", max_batch=batch, log_keys=LOG_KEYS
    )
    await recorder.start()

    async def visitor(k: int) -> None:
        for event in events[k::visitors]:
            await recorder.record(event)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    await asyncio.gather(*(visitor(k) for k in range(visitors)))
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    spooled = recorder.spool_depth
    await recorder.stop()
    t0 = time.perf_counter()
    verified = await log.verify()
    t1 = time.perf_counter()
    await log.stats(EventFilter(), by="day")
    t2 = time.perf_counter()
    exported = sum([1 async for _ in log.export(EventFilter())])
    t3 = time.perf_counter()
    await log.close()
    assert exported == len(events)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "events_per_s": len(events) / elapsed,
        "cpu_us_per_event": cpu / len(events) * 1e6,
        "cores_used": cpu / elapsed,
        "spooled": spooled,
        "verified": float(verified.ok and verified.events_checked == len(events)),
        "verify_per_s": len(events) / (t1 - t0),
        "stats_per_s": len(events) / (t2 - t1),
        "export_per_s": len(events) / (t3 - t2),
    }


def cleanup_redis(url: str) -> None:
    import redis

    prefix = url.split("prefix=", 1)[1]
    with redis.Redis.from_url(url.split("?", 1)[0]) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=5000))
        for i in range(0, len(keys), 5000):
            client.delete(*keys[i : i + 5000])


def cleanup_postgres(url: str) -> None:
    import psycopg

    base, schema = url.split("?schema=", 1)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "redis", "postgres", "both", "all"], default="both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--visitors", type=int, default=4000, help="concurrent record() callers")
    parser.add_argument(
        "--batch",
        type=int,
        default=1000,
        help="EventRecorder max_batch (visitors > batch keeps commits overlapping chaining)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("CONSENT_GATEWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CONSENT_GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a schema of the run's own is created in it and dropped afterwards",
    )
    parser.add_argument("--one-per-commit", action="store_true", help="max_batch=1, for contrast")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend; the best is reported (as timeit)")
    parser.add_argument(
        "--default-gc", action="store_true", help="Python's garbage collector settings, not the serving gateway's"
    )
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:
        loop_factory = asyncio.new_event_loop
        loop_name = "asyncio"
    batch = 1 if args.one_per_commit else args.batch
    backends = {"both": ["sqlite", "redis"], "all": ["sqlite", "redis", "postgres"]}.get(args.backend, [args.backend])
    gc_name = "default gc" if args.default_gc else "serving gc"
    print(f"{args.events} events, {args.visitors} concurrent visitors, batches up to {batch}, {loop_name}, {gc_name}")
    for backend in backends:
        runs = []
        for _ in range(args.repeat):
            events = make_events(args.events)
            if not args.default_gc:
                settle_garbage_collector()  # as `consent-gateway proxy` and `demo` do before serving
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/consent.db"
                elif backend == "postgres":
                    url = f"{args.postgres_url}?schema=cg_bench_{uuid.uuid4().hex[:8]}"
                else:
                    url = f"{args.redis_url}?prefix=cg-bench-{uuid.uuid4().hex[:8]}"
                try:
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        log = open_log(url, log_keys=LOG_KEYS)
                        runs.append(runner.run(run(log, events, args.visitors, batch, Path(tmp) / "spool")))
                finally:
                    gc.unfreeze()
                    if backend == "redis":
                        cleanup_redis(url)
                    elif backend == "postgres":
                        cleanup_postgres(url)
        result = max(runs, key=lambda r: r["events_per_s"])
        result["median_per_s"] = sorted(r["events_per_s"] for r in runs)[len(runs) // 2]
        target = TARGETS[backend]
        verdict = "meets" if result["events_per_s"] >= target else "BELOW"
        print(
            f"{backend:6}  {result['events_per_s']:>9,.0f} durable events/s (median of {len(runs)}: "
            f"{result['median_per_s']:,.0f})  "
            f"({result['cpu_us_per_event']:.1f} µs CPU/event on {result['cores_used']:.2f} cores; "
            f"{verdict} the {target:,}/s target; "
            f"spooled {result['spooled']:.0f}; chains verify: {'yes' if result['verified'] else 'NO'})\n"
            f"        reads: verify {result['verify_per_s']:,.0f} events/s,"
            f" stats {result['stats_per_s']:,.0f} events/s, export {result['export_per_s']:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
