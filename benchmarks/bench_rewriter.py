"""Microseconds per page for the holdback rewriter alone (no HTTP), cold and warm.

    python benchmarks/bench_rewriter.py [--rounds N]

* ``cold``  a new rewriter per page with the chunk cache off: what a page that never repeats costs.
* ``warm``  a new rewriter per page with the chunk cache on, after a first page: what a site that serves
            the same bytes again costs (the per-request banner block still differs per visitor).
* ``dyn``   like warm, but every page carries a different CSRF token half-way down (a dynamic page): the
            cache keeps a page seen before in content-defined segments of ~0.5–1 KiB, so only the segment
            with the token is rewritten again.
* ``pers``  like dyn, with ``bench_http``'s personalised page: 20 short tokens spread over the page, all
            changing on every request (``/page60p``).
Each is run with the optional native helpers (hyperscan, xxhash) and without them, fed as one chunk
(how Starlette sends an ``HTMLResponse``) and in 16 KiB chunks (how a proxy streams), on the compiled rewriter
core (mypyc, when the install built it) and on the pure-Python one (a second process with
``CONSENT_GATEWAY_PURE=1``: the core is chosen at import).
Times are the process's CPU time (best of 5 rounds): on a shared machine, wall-clock time measures the
neighbours. The pages are those of ``bench_http.py``: ~60 KB and ~500 KB, each with 13 real-shaped tracker tags.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_http import build_page, personal_parts, personalise

from consent_gateway import html as rewriter_module
from consent_gateway.catalog import Catalog
from consent_gateway.compiled import PURE_ENV, core_path
from consent_gateway.decision import Decision
from consent_gateway.html import CHUNK_CACHE, HoldbackRewriter

HEAD = b'<script type="application/json" id="cg-config">{"categories":["analytics"]}</script>'


def rewrite(catalog: Catalog, decision: Decision, page: bytes, chunk: int, cached: bool) -> bytes:
    rw = HoldbackRewriter(catalog, decision, HEAD, cache=CHUNK_CACHE if cached else None)
    if chunk >= len(page):
        return rw.feed(page) + rw.close()
    parts = [rw.feed(page[i : i + chunk]) for i in range(0, len(page), chunk)]
    parts.append(rw.close())
    return b"".join(parts)


def per_page_us(catalog: Catalog, decision: Decision, page: bytes, chunk: int, cached: bool, rounds: int,
                dynamic: bool = False, personal: bool = False) -> float:
    middle = page.index(b"\n", len(page) // 2) + 1
    variants = 5 * rounds + 2  # a page of its own per request: never served whole from the cache
    pages = [page]
    if dynamic:
        pages = [page[:middle] + b'<input type="hidden" name="csrf" value="%032x">\n' % random.getrandbits(128)
                 + page[middle:] for _ in range(variants)]
    elif personal:
        parts = personal_parts(page)
        pages = [personalise(parts, i) for i in range(variants)]
    for warm_up in pages[-2:] if len(pages) > 1 else pages * 2:  # the caches and the regex compile; the page
        # (a variant of it) seen before
        rewrite(catalog, decision, warm_up, chunk, cached)
    gc.collect()
    best = float("inf")
    for round_number in range(5):
        start = time.process_time()
        for i in range(rounds):
            rewrite(catalog, decision, pages[(round_number * rounds + i) % len(pages)], chunk, cached)
        best = min(best, (time.process_time() - start) / rounds)
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--this-core-only", action="store_true",
                        help="measure only the core this process runs (no second process for the pure one)")
    args = parser.parse_args()
    catalog = Catalog.builtin()
    decision = Decision(granted=frozenset({"necessary"}))
    pages = {"60 KB": build_page(60_000), "500 KB": build_page(500_000)}
    core = core_path()[0]
    for name, page in pages.items() if not args.this_core_only else ():
        out = rewrite(catalog, decision, page, len(page), False)
        rw = HoldbackRewriter(catalog, decision, HEAD, cache=None)
        rw.feed(page)
        rw.close()
        print(f"page {name}: {len(page):,} bytes in, {len(out):,} out, held back {sum(rw.held_back.values())} tags "
              f"({', '.join(sorted(rw.held_back))})")
    if not args.this_core_only:
        print(f"rewriter core: {' '.join(core_path())}")
        print(f"{'core':>8} {'page':>7} {'chunks':>9} {'accel':>8} {'cold µs':>10} {'warm µs':>10} {'dyn µs':>10} "
              f"{'pers µs':>10} {'cold MB/s':>10}")
    for accelerated in (True, False):
        rewriter_module.use_accelerators(accelerated)
        for name, page in pages.items():
            rounds = max(3, args.rounds if len(page) < 100_000 else args.rounds // 8)
            for chunk_name, chunk in (("whole", len(page)), ("16 KiB", 16384)):
                cold = per_page_us(catalog, decision, page, chunk, False, rounds)
                warm = per_page_us(catalog, decision, page, chunk, True, rounds * 4)
                dyn = per_page_us(catalog, decision, page, chunk, True, rounds, dynamic=True)
                pers = per_page_us(catalog, decision, page, chunk, True, rounds, personal=True)
                helpers = "on" if accelerated else "off"
                print(f"{core:>8} {name:>7} {chunk_name:>9} {helpers:>8} {cold:10.1f} {warm:10.1f} {dyn:10.1f} "
                      f"{pers:10.1f} {len(page) / cold:10.1f}", flush=True)
    rewriter_module.use_accelerators(True)
    if core == "compiled" and not args.this_core_only:
        # the same figures on the pure-Python core, in a process of its own
        subprocess.run([sys.executable, __file__, "--this-core-only", "--rounds", str(args.rounds)],  # noqa: S603
                       env={**os.environ, PURE_ENV: "1"}, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
