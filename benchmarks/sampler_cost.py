"""CPU cost of one full sampling cycle, Cython against pure Python, in one process.

Eight threads wait on an ``Event`` with a Python stack 50 frames deep. Two
samplers, one per implementation, are built but not started; the script calls
``sampler.sample_once()`` (a complete cycle: ``sys._current_frames()``, the
periodic thread refresh, the walk of every stack, interning, accounting) in
batches, timing each batch with the calling thread's CPU clock
(``time.thread_time_ns``). Batches alternate between the implementations
(A B, then B A, ...); each pair gives a ratio python/cython, and the medians of
the per-cycle costs and of the pair ratios are reported.

Targets (wall mode): Cython <= 15 us per cycle and >= 10x cheaper than pure
Python. cpu mode is printed for information: the waiting threads use no CPU,
so that cycle reads eight CPU clocks and walks no stack.

    python benchmarks/sampler_cost.py
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable

from ember import Sampler
from stacks import at_depth, frame_depth

IMPLEMENTATIONS = ("cython", "python")
TARGET_US = 15.0
TARGET_RATIO = 10.0


def park(ready: threading.Barrier, release: threading.Event) -> None:
    """Say ready, then block in ``Event.wait`` until released."""
    ready.wait()
    release.wait()


def start_threads(count: int, depth: int) -> tuple[threading.Event, list[threading.Thread]]:
    ready = threading.Barrier(count + 1)
    release = threading.Event()
    # park's frame at depth - 2, then Event.wait and Condition.wait: the leaf at ``depth``.
    threads = [threading.Thread(target=at_depth, args=(depth - 2, park, ready, release),
                                name=f"blocked-{i}", daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.05)  # let every thread get from the barrier into Event.wait
    return release, threads


def per_cycle_us(cycle: Callable[[], object], cycles: int) -> float:
    """CPU time of this thread per call of ``cycle``, in microseconds."""
    clock = time.thread_time_ns
    before = clock()
    for _ in range(cycles):
        cycle()
    return (clock() - before) / cycles / 1000


def compare(title: str, cycles_of: dict[str, Callable[[], object]], pairs: int, cycles: int,
            verbose: bool) -> dict[str, float]:
    """Alternate batches of both implementations; return the medians."""
    for cycle in cycles_of.values():  # warm up: intern the stacks, materialise frames
        per_cycle_us(cycle, cycles)
    costs: dict[str, list[float]] = {impl: [] for impl in IMPLEMENTATIONS}
    ratios: list[float] = []
    print(f"\n{title}: {pairs} pairs of batches of {cycles} cycles")
    if verbose:
        print(f"  {'pair':>4} {'cython us':>10} {'python us':>10} {'ratio':>7}")
    for i in range(pairs):
        order = IMPLEMENTATIONS if i % 2 == 0 else IMPLEMENTATIONS[::-1]
        pair = {}
        for impl in order:
            gc.collect()
            pair[impl] = per_cycle_us(cycles_of[impl], cycles)
            costs[impl].append(pair[impl])
        ratios.append(pair["python"] / pair["cython"])
        if verbose:
            print(f"  {i:>4} {pair['cython']:10.2f} {pair['python']:10.2f} {ratios[-1]:7.1f}")
    medians = {impl: statistics.median(costs[impl]) for impl in IMPLEMENTATIONS}
    medians["ratio"] = statistics.median(ratios)
    print(f"  median per cycle: cython {medians['cython']:.2f} us, "
          f"python {medians['python']:.2f} us; median pair ratio python/cython "
          f"{medians['ratio']:.1f}x (min {min(ratios):.1f}, max {max(ratios):.1f})")
    return medians


def spaced(found: dict[str, Sampler], pairs: int, gap: float) -> None:
    """One cycle at a time, ``gap`` seconds apart, as the sampler thread runs them."""
    costs: dict[str, list[float]] = {impl: [] for impl in IMPLEMENTATIONS}
    ratios: list[float] = []
    for i in range(pairs):
        order = IMPLEMENTATIONS if i % 2 == 0 else IMPLEMENTATIONS[::-1]
        for impl in order:
            time.sleep(gap)
            costs[impl].append(per_cycle_us(found[impl].sample_once, 1))
        ratios.append(costs["python"][-1] / costs["cython"][-1])
    print(f"\nfor information, wall mode, {pairs} pairs of single cycles {gap * 1000:g} ms apart "
          "(caches and CPU no longer warm):")
    print(f"  median per cycle: cython {statistics.median(costs['cython']):.2f} us, "
          f"python {statistics.median(costs['python']):.2f} us; median pair ratio "
          f"python/cython {statistics.median(ratios):.1f}x")


def samplers(mode: str) -> dict[str, Sampler]:
    """One sampler per implementation, not started, with default settings."""
    out = {impl: Sampler(implementation=impl, mode=mode) for impl in IMPLEMENTATIONS}
    for sampler in out.values():
        sampler.sample_once()  # first visit: registers the threads
    return out


def collect_only(sampler: Sampler, mode: str) -> Callable[[], object]:
    """The collector's part of a cycle alone, on a fixed set of frames."""
    frames = sys._current_frames()
    frames.pop(threading.get_ident())
    collector = sampler._collector
    now = time.monotonic_ns()
    return lambda: collector.collect(frames, now, 10_000_000, mode == "cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8, help="blocked threads (8)")
    parser.add_argument("--depth", type=int, default=50, help="their stack depth (50)")
    parser.add_argument("--pairs", type=int, default=21, help="pairs of batches (21)")
    parser.add_argument("--cycles", type=int, default=2000, help="cycles per batch (2000)")
    parser.add_argument("--quiet", action="store_true", help="medians only, no batch lines")
    args = parser.parse_args(argv)

    release, threads = start_threads(args.threads, args.depth)
    try:
        frames = sys._current_frames()
        depths = sorted({frame_depth(frames[t.ident]) for t in threads if t.ident in frames})
        print(f"sampler_cost: {args.threads} threads blocked in Event.wait at stack depth "
              f"{', '.join(map(str, depths))}; CPU time of the calling thread per "
              "sample_once()")
        floor = statistics.median(per_cycle_us(sys._current_frames, args.cycles)
                                  for _ in range(5))
        print(f"for reference: sys._current_frames() alone costs {floor:.2f} us")
        verbose = not args.quiet
        for mode in ("wall", "cpu"):
            found = samplers(mode)
            taken = {impl: s.sample_once() for impl, s in found.items()}
            medians = compare(f"{mode} mode, sample_once() (samples per cycle: "
                              + ", ".join(f"{i} {n}" for i, n in taken.items()) + ")",
                              {impl: s.sample_once for impl, s in found.items()},
                              args.pairs, args.cycles, verbose)
            if mode == "wall":
                wall = medians
        found = samplers("wall")
        compare("for information, wall mode, Collector.collect() alone",
                {impl: collect_only(s, "wall") for impl, s in found.items()},
                args.pairs, args.cycles, verbose=False)
        spaced(samplers("wall"), pairs=100, gap=0.01)
    finally:
        release.set()
        for t in threads:
            t.join()

    ok = wall["cython"] <= TARGET_US and wall["ratio"] >= TARGET_RATIO
    print(f"\n{'PASS' if ok else 'FAIL'}: wall mode, cython {wall['cython']:.2f} us per cycle "
          f"(target <= {TARGET_US:g} us), {wall['ratio']:.1f}x cheaper than pure Python "
          f"(target >= {TARGET_RATIO:g}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
