"""What the sampler's in-memory history costs: estimated and measured bytes.

Fills windows with realistic deep stacks through the real collectors (both
twins): a service's stacks share a root (server, framework, middleware) and
branch below it into the application's functions, spread over many files.
For each shape it prints the window's estimate (``ember.window.estimate_bytes``)
beside what tracemalloc counts for the same tables; then it fills a history
at its byte budget and prints what it holds and the process's RSS.

    python benchmarks/history_memory.py                 # defaults: 20,000 stacks, 60 deep
    python benchmarks/history_memory.py --stacks 2000 --depth 40 --budget-mib 64

The functions are also what tests/unit/test_history_budget.py runs.
"""

from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ember import _impl
from ember.profile import Metadata
from ember.window import History, Window, estimate_bytes

MIB = 1 << 20
FUNCTIONS = 600
FILES = 40
ENDPOINTS = 20


def make_functions(count: int = FUNCTIONS, files: int = FILES) -> list[Callable[..., Any]]:
    """``count`` distinct functions in ``files`` files; each calls the next one
    its path names, and the last calls the leaf."""
    functions: list[Callable[..., Any]] = []
    for k in range(count):
        source = (f"def handler_{k}(path, i, leaf):\n"
                  "    if i < len(path):\n"
                  "        return FUNCTIONS[path[i]](path, i + 1, leaf)\n"
                  "    return leaf()\n")
        # first lines spread like real ones (most beyond the cached small ints)
        code = compile("\n" * (k * 37 % 2000) + source, f"/srv/app/pkg{k % files}/mod{k}.py",
                       "exec")
        namespace: dict[str, Any] = {"FUNCTIONS": functions}
        exec(code, namespace)
        functions.append(namespace[f"handler_{k}"])
    return functions


def fill(collector: Any, functions: list[Callable[..., Any]], stacks: int, depth: int,
         rng: random.Random) -> None:
    """Collect ``stacks`` distinct stacks of ``depth`` frames (wall mode) into
    ``collector``: half of each is a shared root, the rest random, under one of
    :data:`ENDPOINTS` endpoint labels."""
    ident, native = threading.get_ident(), threading.get_native_id()
    labels = [(("endpoint", f"GET /api/v1/resource{i}/{{id}}"),) for i in range(ENDPOINTS)]
    root = [rng.randrange(len(functions)) for _ in range(depth // 2)]
    now = [1_000_000_000_000]

    def leaf() -> None:
        now[0] += 10_000_000
        collector.collect({ident: sys._getframe(1)}, now[0], 10_000_000, False)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, depth + 200))
    try:
        for n in range(stacks):
            collector.set_thread(ident, native, labels[n % ENDPOINTS])
            path = root + [rng.randrange(len(functions)) for _ in range(depth - len(root))]
            functions[path[0]](path, 1, leaf)
    finally:
        sys.setrecursionlimit(limit)


def window(capture: ModuleType, functions: list[Callable[..., Any]], stacks: int, depth: int,
           seed: int = 0) -> Window:
    """One sealed window of ``stacks`` stacks ``depth`` deep, from ``capture``'s collector."""
    collector = capture.Collector(max(stacks, 1), max(depth + 16, 2), False)
    fill(collector, functions, stacks, depth, random.Random(seed))
    frames, stack_table, values, truncated = collector.take()
    return Window(Metadata(truncated=truncated), frames, stack_table, values)


def measured(make: Callable[[], Any]) -> tuple[Any, int]:
    """What ``make()`` returns and the bytes tracemalloc counts still held after it."""
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = make()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    if not was_tracing:
        tracemalloc.stop()
    return result, held


def estimated_and_measured(implementation: str, functions: list[Callable[..., Any]],
                           stacks: int, depth: int) -> tuple[int, int, int]:
    """A sealed window's estimate and the bytes tracemalloc counts for it, and
    the bytes of the same window while it is open (the collector's tables with
    their interning dicts)."""
    capture = _impl.module("capture", implementation)

    def open_window() -> Any:
        collector = capture.Collector(max(stacks, 1), max(depth + 16, 2), False)
        fill(collector, functions, stacks, depth, random.Random(0))
        return collector

    collector, open_bytes = measured(open_window)
    del collector
    # the functions' code objects are not the window's: made before measuring
    win, held = measured(lambda: window(capture, functions, stacks, depth))
    return estimate_bytes(win.frames, win.stacks, win.values,
                          fresh_ids=implementation == "cython"), held, open_bytes


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_at_budget(implementation: str, stacks: int, depth: int, budget: int,
                  windows: int) -> str:
    """Seal ``windows`` windows into a history of ``budget`` bytes; what it holds
    and the RSS (run in a process of its own, without tracemalloc)."""
    capture = _impl.module("capture", implementation)
    functions = make_functions()
    gc.collect()
    before = rss_bytes()
    history = History(360, budget, fresh_ids=implementation == "cython")
    for seed in range(windows):
        history.append(window(capture, functions, stacks, depth, seed))
    gc.collect()
    after = rss_bytes()
    return (f"{implementation}: budget {budget / MIB:.0f} MiB, {windows} windows sealed,"
            f" {len(history)} held, estimated {history.nbytes / MIB:.1f} MiB;"
            f" RSS {before / MIB:.0f} -> {after / MIB:.0f} MiB"
            f" (+{(after - before) / MIB:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=20_000, help="stacks per window")
    parser.add_argument("--depth", type=int, default=60, help="frames per stack")
    parser.add_argument("--budget-mib", type=float, default=64, help="history budget")
    parser.add_argument("--windows", type=int, default=5, help="windows sealed at the budget")
    parser.add_argument("--rss", choices=("cython", "python"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = int(args.budget_mib * MIB)
    if args.rss:
        print(rss_at_budget(args.rss, args.stacks, args.depth, budget, args.windows))
        return
    functions = make_functions()
    print("sealed window: estimate vs tracemalloc; open: the same window still in the collector")
    print(f"{'twin':8} {'stacks':>7} {'depth':>5} {'estimate MB':>12} {'tracemalloc MB':>15}"
          f" {'ratio':>6} {'B/stack':>8} {'open MB':>8}")
    for implementation in ("cython", "python"):
        for stacks, depth in ((args.stacks, args.depth), (2_000, 30), (5_000, 150)):
            estimate, held, open_bytes = estimated_and_measured(implementation, functions,
                                                                stacks, depth)
            print(f"{implementation:8} {stacks:>7} {depth:>5} {estimate / 1e6:>12.2f}"
                  f" {held / 1e6:>15.2f} {estimate / held:>6.3f} {estimate / stacks:>8.0f}"
                  f" {open_bytes / 1e6:>8.2f}")
    print()
    for implementation in ("cython", "python"):
        subprocess.run([sys.executable, __file__, "--rss", implementation,
                        "--stacks", str(args.stacks), "--depth", str(args.depth),
                        "--budget-mib", str(args.budget_mib), "--windows", str(args.windows)],
                       check=True)


if __name__ == "__main__":
    main()
