"""What one sampling cycle costs on a cold core, part by part, in one process.

``overhead.py`` measures the sampler's whole share of a busy service; this
script splits a cycle into its parts to show where that share goes. The same
service (eight threads running ``ember.demo``'s handlers at stack depth ~50)
runs while one measuring thread wakes like the sampler (``Lock.acquire`` with
a timeout drawn from 5-15 ms), takes the GIL, and then does one of these parts,
switching part every batch (A B C ... A B C ...):

- ``wake``: nothing (the floor of ``ticker.py``);
- ``frames``: ``sys._current_frames()``, the GC off;
- ``clocks``: read every worker's thread CPU clock (one system call each);
- ``walk-2``: a wall-mode sampler cycle cut at ``max_depth=2``;
- ``walk``: the same at full depth (the difference: walking ~48 more frames
  per thread with the public frame C-API);
- ``collector``: the production collector call, ``Collector.cycle`` (cpu mode);
- ``cycle``: the production ``Sampler.sample_once()`` (cpu mode, 100 Hz).

For each part it prints the thread's CPU per cycle in all (the wait, the GIL
and the part) and the CPU of the part alone, both from ``time.thread_time_ns``,
medians over the batches. A part's own figure includes two clock reads: read
the others net of ``wake``'s. The same code costs a few µs in a hot loop
(``sampler_cost.py``); here every cycle starts on a core whose caches the
service's threads have just used.

    python benchmarks/cycle_parts.py
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable

from ember import Sampler, _impl
from overhead import serve
from stacks import at_depth

PARTS = ("wake", "frames", "clocks", "walk-2", "walk", "collector", "cycle")


class Parts:
    """The measuring thread's state, and each part as a function."""

    def __init__(self, implementation: str, workers: list[threading.Thread]) -> None:
        self.capture = _impl.module("capture", implementation)
        self.workers = workers
        self.cpu = Sampler(implementation=implementation)
        self.wall = Sampler(implementation=implementation, mode="wall")
        self.wall_2 = Sampler(implementation=implementation, mode="wall", max_depth=2)
        self.me = 0

    def prepare(self) -> None:
        """Register the workers in every sampler (called on the measuring thread,
        which ``sample_once()`` leaves out when called directly)."""
        self.me = threading.get_ident()
        for sampler in (self.cpu, self.wall, self.wall_2):
            sampler.sample_once()

    def part(self, name: str) -> Callable[[], object]:
        return {
            "wake": lambda: None,
            "frames": self.frames,
            "clocks": self.clocks,
            "walk-2": self.wall_2.sample_once,
            "walk": self.wall.sample_once,
            "collector": self.collector,
            "cycle": self.cpu.sample_once,
        }[name]

    def frames(self) -> object:
        gc.disable()
        try:
            return len(sys._current_frames())
        finally:
            gc.enable()

    def clocks(self) -> object:
        read = self.capture.thread_cpu_ns
        return [read(w.native_id) for w in self.workers]

    def collector(self) -> object:
        collector = self.cpu._collector
        taken = collector.cycle(time.monotonic_ns(), 10_000_000, self.me)
        if taken < 0 or collector.missing or collector.gone:
            collector.take_pending()
        return taken


def measure(args: argparse.Namespace) -> dict[str, list[tuple[float, float, float]]]:
    gate, done = threading.Event(), threading.Event()
    workers = [threading.Thread(target=at_depth, args=(args.depth - 1, serve, gate, done),
                                name=f"worker-{i}", daemon=True) for i in range(args.threads)]
    for worker in workers:
        worker.start()
    parts = Parts(args.implementation, workers)
    current = [PARTS[0]]
    totals = {"cycles": 0, "work": 0}
    stop = threading.Event()

    def loop() -> None:
        parts.prepare()
        lock = threading.Lock()
        lock.acquire()
        while not stop.is_set():
            lock.acquire(True, random.uniform(0.005, 0.015))
            run = parts.part(current[0])
            before = time.thread_time_ns()
            run()
            totals["work"] += time.thread_time_ns() - before
            totals["cycles"] += 1

    gate.set()
    measurer = threading.Thread(target=loop, name="measurer", daemon=True)
    measurer.start()
    time.sleep(1.0)  # the workers reach their depth; the samplers register them
    clock = time.pthread_getcpuclockid(measurer.ident or 0)  # the measuring thread's CPU
    results: dict[str, list[tuple[float, float, float]]] = {p: [] for p in PARTS}
    for _ in range(args.rounds):
        for part in PARTS:
            current[0] = part
            time.sleep(0.1)  # the cycle under way ends with the previous part
            cycles, work = totals["cycles"], totals["work"]
            cpu = time.clock_gettime_ns(clock)
            time.sleep(args.batch)
            n = max(totals["cycles"] - cycles, 1)
            cpu = time.clock_gettime_ns(clock) - cpu
            results[part].append((n / args.batch, cpu / n / 1e3, (totals["work"] - work) / n / 1e3))
    stop.set()
    done.set()
    measurer.join()
    for worker in workers:
        worker.join()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--implementation", choices=("cython", "python"), default="cython")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (8)")
    parser.add_argument("--depth", type=int, default=50, help="their stack depth (50)")
    parser.add_argument("--batch", type=float, default=2.0, help="seconds per batch (2)")
    parser.add_argument("--rounds", type=int, default=8, help="batches per part (8)")
    args = parser.parse_args(argv)
    print(f"cycle parts: {args.implementation}, {args.threads} worker threads at depth "
          f"~{args.depth}, {args.rounds} batches of {args.batch:g} s per part, alternating")
    results = measure(args)
    floor = statistics.median(r[2] for r in results["wake"])
    print(f"  {'part':<10} {'cycles/s':>8} {'per cycle':>10} {'the part':>9} {'net':>8}")
    for part, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        own = statistics.median(r[2] for r in runs)
        print(f"  {part:<10} {rate:8.1f} {total:8.1f}us {own:7.1f}us {own - floor:+6.1f}us")
    print("  per cycle: the thread's CPU per cycle (wait, GIL, part); the part: its own CPU;"
          "\n  net: less the two clock reads (the part 'wake')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
