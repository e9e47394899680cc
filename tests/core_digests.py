"""The rewriter's output on a fixed corpus, as one digest per case, for comparing the compiled and the
pure-Python core (``tests/test_compiled_core.py`` runs this once per path, each in its own process: the path
is chosen when the package is first imported).

    python tests/core_digests.py [--real-pages DIR] [--real-bytes N]

Prints JSON: {"path": [path, reason], "compiled": bool, "digests": {case: sha256}}. The corpus: every golden
page at chunk sizes whole, 1, 7 and 4096, with and without the optional accelerators; random documents built
from the property test's fragments (fixed seed) with small buffers, random cuts and two decisions; real saved
pages when the folder exists (the first N bytes' worth, whole and in 4 KiB chunks).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import sys
import tempfile
import urllib.parse
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from test_rewriter_property import EVERYTHING, NOTHING, TRACKERS, TRICKY  # noqa: E402

from consent_gateway import html as rewriter_module  # noqa: E402
from consent_gateway.catalog import Catalog  # noqa: E402
from consent_gateway.compiled import core_path, running_compiled  # noqa: E402
from consent_gateway.config import load_config  # noqa: E402
from consent_gateway.decision import Decision  # noqa: E402
from consent_gateway.html import HoldbackRewriter  # noqa: E402
from consent_gateway.thirdparty import site_catalog, site_of  # noqa: E402

GOLDEN = TESTS / "data" / "rewriter"
DEFAULT_REAL_PAGES = TESTS.parent.parent / "shared" / "data" / "real-pages"
HEAD = b"<!--cg-head-->"


def rewrite(catalog: Catalog, decision: Decision, page: bytes, cuts: list[int], max_buffer_bytes: int = 65536
            ) -> bytes:
    rw = HoldbackRewriter(catalog, decision, HEAD, max_buffer_bytes=max_buffer_bytes, cache=None)
    out, last = [], 0
    for cut in cuts:
        out.append(rw.feed(page[last:cut]))
        last = cut
    out.append(rw.feed(page[last:]))
    out.append(rw.close())
    return b"".join(out)


def every(size: int, length: int) -> list[int]:
    return list(range(size, length, size))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def golden_cases(catalog: Catalog) -> dict[str, str]:
    found = {}
    for accelerated in (True, False):
        rewriter_module.use_accelerators(accelerated)
        for source in sorted([*GOLDEN.glob("*.src.html"), *(GOLDEN.parent / "rewriter_css").glob("*.src.html")]):
            page = source.read_bytes()
            for size in (0, 1, 7, 4096):
                name = f"golden/{source.name}/{size or 'whole'}/{'native' if accelerated else 'regex'}"
                found[name] = digest(rewrite(catalog, NOTHING, page, every(size, len(page)) if size else []))
    rewriter_module.use_accelerators(True)
    return found


def random_cases(catalog: Catalog, count: int = 400) -> dict[str, str]:
    pick = random.Random(20261128)
    pool = TRACKERS + TRICKY
    found = {}
    for number in range(count):
        page = b"".join(pick.choice(pool) for _ in range(pick.randint(1, 30))) * pick.choice((1, 1, 3, 40))
        cuts = sorted(pick.randrange(len(page) + 1) for _ in range(pick.randint(0, 12)))
        for decision_name, decision in (("nothing", NOTHING), ("everything", EVERYTHING)):
            for buffer in (256, 65536):
                for cut_name, page_cuts in (("whole", []), ("cuts", cuts)):
                    name = f"random/{number}/{decision_name}/{buffer}/{cut_name}"
                    found[name] = digest(rewrite(catalog, decision, page, page_cuts, buffer))
    return found


def real_page_cases(folder: Path, budget: int) -> dict[str, str]:
    manifest = folder / "manifest.tsv"
    if not manifest.exists():
        return {}
    with tempfile.TemporaryDirectory(prefix="cg-digests-") as data_dir:
        config_file = Path(data_dir) / "gateway.toml"
        config_file.write_text(f"[gateway]\ndata_dir = {json.dumps(data_dir)}\n", encoding="utf-8")
        catalog = site_catalog(load_config(config_file))
    found: dict[str, str] = {}
    spent = 0
    lines = manifest.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        path = folder / "pages" / f"{row['id']}.html.gz"
        if not path.exists():
            continue
        page = gzip.decompress(path.read_bytes())
        if spent + len(page) > budget:
            continue
        spent += len(page)
        host = urllib.parse.urlsplit(row.get("page_url") or "").hostname or "www.example.org"
        decision = Decision(granted=frozenset({"necessary"}), site=site_of(host))
        for size in (0, 4096):
            out = rewrite(catalog, decision, page, every(size, len(page)) if size else [])
            found[f"real/{row['id']}/{size or 'whole'}"] = digest(out)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-pages", type=Path, default=DEFAULT_REAL_PAGES)
    parser.add_argument("--real-bytes", type=int, default=8_000_000, help="real pages read, in bytes at most")
    args = parser.parse_args()
    catalog = Catalog.builtin()
    digests = {**golden_cases(catalog), **random_cases(catalog), **real_page_cases(args.real_pages, args.real_bytes)}
    print(json.dumps({"path": list(core_path()), "compiled": running_compiled(), "digests": digests}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
