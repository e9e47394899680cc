"""Enrichment throughput: ``Enricher.facts()`` events/s (UA parse + country + IP minimisation).

Traffic repeats itself: a few hundred user agents carry most requests, with a long tail of rare ones.
The benchmark draws user agents from a Zipf-like distribution over a pool of real strings (uap-core's
``test_ua.yaml`` when ``CONSENT_GATEWAY_UA_CORPUS`` or ``../shared/data`` provides it, else a built-in list)
plus a share of never-seen-before strings, and IPs from a MaxMind test database's networks.

    python benchmarks/bench_enrich.py [--events 200000] [--geoip PATH] [--unique-share 0.01] [--pure-python]

Target (issue 4): >= 20,000 events/s on this distribution.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consent_gateway.enrich import Enricher, _UserAgentParser  # noqa: E402

TARGET_EVENTS_PER_SECOND = 20_000

FALLBACK_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36 Edg/120.0.2210.91",
]

IPS = [
    "89.160.20.112",
    "89.160.20.130",
    "81.2.69.142",
    "2.125.160.216",
    "216.160.83.56",
    "2a02:cfc0::1",
    "2a02:d180::1",
    "2a02:e900::1",
    "2a02:cf40::1",
    "2001:218::1",
    "67.43.156.1",
    "127.0.0.1",
]


def _corpus_path() -> Path | None:
    env = os.environ.get("CONSENT_GATEWAY_UA_CORPUS")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data" / "uap-core" / "test_ua.yaml")
    return next((path for path in candidates if path.is_file()), None)


def load_user_agents() -> list[str]:
    path = _corpus_path()
    if path is None:
        return list(FALLBACK_UAS)
    found = []
    # one `- user_agent_string: '...'` per case; a regex avoids a YAML dependency
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"""\s+- user_agent_string: (['"])(.*)\1\s*$""", line)
        if match:
            text = match.group(2)
            found.append(text.replace("''", "'") if match.group(1) == "'" else text)
    return FALLBACK_UAS + found


def _geoip_path(arg: str | None) -> str | None:
    if arg:
        return arg
    for candidate in (ROOT / "tests" / "data" / "geoip" / "GeoLite2-Country-Test.mmdb",):
        if candidate.is_file():
            return str(candidate)
    return None


def build_events(uas: list[str], n: int, pool_size: int, unique_share: float, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)  # noqa: S311 -- reproducible traffic, not secrets
    pool = rng.sample(uas, min(pool_size, len(uas)))
    weights = [1.0 / (rank + 1) for rank in range(len(pool))]  # Zipf, s = 1
    picks = rng.choices(pool, weights=weights, k=n)
    events = []
    for i, ua in enumerate(picks):
        if rng.random() < unique_share:  # a never-seen string: a cache miss on purpose
            ua = f"{ua} uniq/{i}"
        events.append((rng.choice(IPS), ua))
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pool", type=int, default=500, help="distinct user agents in the traffic")
    parser.add_argument("--unique-share", type=float, default=0.01, help="share of never-seen user agents")
    parser.add_argument("--geoip", default=None, help="MaxMind database (default: the tests' copy)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pure-python", action="store_true", help="measure without the ua-parser-rs resolver")
    args = parser.parse_args()

    uas = load_user_agents()
    events = build_events(uas, args.events, args.pool, args.unique_share, args.seed)
    enricher = Enricher(geoip_database=_geoip_path(args.geoip))
    if args.pure_python:
        enricher._ua_parser = _UserAgentParser(native=False)
    enricher.facts("89.160.20.112", uas[0])  # open readers outside the timed loop
    facts = enricher.facts
    start = time.perf_counter()
    for ip, ua in events:
        facts(ip, ua)
    elapsed = time.perf_counter() - start
    rate = len(events) / elapsed
    info = enricher._parse_ua.cache_info()
    print(f"user agents: {len(uas)} in corpus, {args.pool} in the pool, {args.unique_share:.1%} unique")
    print(f"native ua-parser-rs: {enricher.uses_native_ua_parser}; cache hits {info.hits}, misses {info.misses}")
    print(
        f"facts(): {len(events)} events in {elapsed:.2f} s = {rate:,.0f} events/s "
        f"(target {TARGET_EVENTS_PER_SECOND:,}: {'met' if rate >= TARGET_EVENTS_PER_SECOND else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
