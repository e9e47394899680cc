"""The serving process's garbage collector (serving.settle_garbage_collector), in a process of its own."""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import gc, weakref
from consent_gateway.serving import GC_YOUNG_THRESHOLD, settle_garbage_collector

class Node:
    pass

settle_garbage_collector()
assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
cycle = Node()
cycle.self = cycle
alive = weakref.ref(cycle)
del cycle
keep = [[] for _ in range(3 * GC_YOUNG_THRESHOLD)]  # allocations alone, no explicit collect
print("collected" if alive() is None else "leaked")
"""


def test_a_serving_process_still_collects_cyclic_garbage_by_itself() -> None:
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "collected"
