"""What ember's sampler costs against the floor under any in-process sampler.

One process, a service of eight threads whose code sits ~50 frames deep:
``idle`` (blocked in ``Event.wait``) or ``busy`` (running ``ember.demo``'s
handlers, all contending for the GIL). Beside it runs, one at a time in
alternating short batches, at 100 Hz:

- ``native``: a thread that waits 100 times a second without the GIL and does
  nothing else (ember's compiled waker with no thread to watch): the cost of a
  wake-up on this machine;
- ``python``: a Python thread that waits like a sampler (``Lock.acquire`` with
  a timeout of 5-15 ms), takes the GIL and calls ``sys._current_frames()``:
  the floor of any sampler written in Python;
- ``ember``: ``ember.Sampler()`` at its defaults (cpu mode, 100 Hz, 1% budget);
- ``none``: nothing (the service's own context switches).

Per batch it reads the extra thread's CPU from ``/proc/self/task/TID/schedstat``
(first field) and its cycles, and the application threads' context switches
(``voluntary_ctxt_switches + nonvoluntary_ctxt_switches`` of
``/proc/self/task/TID/status``). It prints medians per variant and the medians
of the pair ratios within a round (ember against native on the idle service,
against python on the busy one), and judges the targets:

- idle, ember's CPU per second <= 1.5x native's (at the same 100 Hz);
- busy, ember's CPU per cycle <= 1.15x python's, at no lower rate;
- busy, the application threads' context switches per cycle <= 1.1x python's
  (each beyond what they switch with no extra thread, ``none``).

    python benchmarks/floor.py [--batch 2] [--rounds 8]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ember import Sampler, _impl
from ember.demo import HANDLERS
from stacks import at_depth

VARIANTS = ("native", "python", "ember", "none")


def schedstat_ns(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def switches(tid: int) -> int:
    total = 0
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


# -- the service ------------------------------------------------------------------
class Service:
    """Eight threads at depth ~50, idle (blocked) or busy (CPU-bound handlers)."""

    def __init__(self, busy: bool, threads: int = 8, depth: int = 50) -> None:
        self.done = threading.Event()
        self.served = [0] * threads  # handler rounds done per thread: the service's work
        target = self._serve if busy else self._block
        self.threads = [threading.Thread(target=at_depth, args=(depth - 1, target, i),
                                         name=f"app-{i}", daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()
        time.sleep(0.2)

    def _serve(self, index: int) -> None:
        while not self.done.is_set():
            for handler, rounds in HANDLERS.items():
                handler(rounds)
            self.served[index] += 1

    def _block(self, index: int) -> None:
        self.done.wait()

    def tids(self) -> list[int]:
        return [t.native_id or 0 for t in self.threads]

    def stop(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


# -- the extra threads --------------------------------------------------------------
class Extra:
    """One variant running in a thread of its own for one batch."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.cycles = 0
        self.tid = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._lock.acquire()
        self._sampler: Sampler | None = None
        self._waker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.variant == "ember":
            self._sampler = Sampler().start()
            while not self._sampler.stats()["native_id"]:
                time.sleep(0.001)
            self.tid = self._sampler.stats()["native_id"]
            return
        if self.variant == "none":
            return
        run: Callable[[], None] = self._native if self.variant == "native" else self._python
        self._thread = threading.Thread(target=run, daemon=True, name=self.variant)
        self._thread.start()
        while not self.tid:
            time.sleep(0.001)

    def _native(self) -> None:
        self._waker = _impl.module("wake", "cython").Waker(random.getrandbits(64))
        self.tid = threading.get_native_id()
        self._waker.begin(time.monotonic_ns(), 10_000_000)
        self._waker.wait(10_000_000, time.monotonic_ns() + 10**12, True)

    def _python(self) -> None:
        self.tid = threading.get_native_id()
        while not self._lock.acquire(True, random.uniform(0.005, 0.015)):
            sys._current_frames()
            self.cycles += 1

    def count(self) -> int:
        if self._sampler is not None:
            return int(self._sampler.stats()["wakes"])
        if self._waker is not None:
            return int(self._waker.wakes)
        return self.cycles

    def stop(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self._sampler is not None:
            stats = self._sampler.stats()
            info = {"gil_share": stats["cycles"] / max(stats["wakes"], 1),
                    "interval": stats["interval"], "gil_wait": stats["gil_wait"]}
            self._sampler.stop()
        if self._waker is not None:
            self._waker.stop()
        self._lock.release()
        if self._thread is not None:
            self._thread.join()
        return info


def counters(tid: int) -> tuple[int, int, int]:
    """(time, CPU, context switches) of one thread, read together: reading a file
    waits for the GIL, which the busy service holds, so each thread's figures
    carry their own time."""
    cpu = schedstat_ns(tid)
    now = time.monotonic_ns()
    return now, cpu, switches(tid)


def rates(before: list[tuple[int, int, int]],
          after: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Summed CPU (ns) and context switches per second between two readings."""
    cpu = sw = 0.0
    for (t0, c0, s0), (t1, c1, s1) in zip(before, after, strict=True):
        cpu += (c1 - c0) / ((t1 - t0) / 1e9)
        sw += (s1 - s0) / ((t1 - t0) / 1e9)
    return cpu, sw


def batch(service: Service, variant: str, seconds: float) -> dict[str, float]:
    extra = Extra(variant)
    extra.start()
    time.sleep(0.05)  # let it settle into its rhythm
    tids = service.tids()
    cycles0, t0 = extra.count(), time.monotonic_ns()
    served0 = sum(service.served)
    own0 = counters(extra.tid) if extra.tid else None
    app0 = [counters(t) for t in tids]
    time.sleep(seconds)
    own1 = counters(extra.tid) if extra.tid else None
    cycles, t1 = extra.count() - cycles0, time.monotonic_ns()
    served = sum(service.served) - served0
    app1 = [counters(t) for t in tids]
    info = extra.stop()
    rate = cycles / ((t1 - t0) / 1e9)
    cpu = rates([own0], [own1])[0] if own0 and own1 else 0.0
    app_cpu, sw = rates(app0, app1)
    return {"cycles": cycles, "rate": rate, "cpu_per_s": cpu,
            "cpu_per_cycle": cpu / rate if rate else 0.0, "switches_per_s": sw,
            "app_cpu_per_s": app_cpu, "work_per_s": served / ((t1 - t0) / 1e9), **info}


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def run(busy: bool, seconds: float, rounds: int) -> dict[str, list[dict[str, float]]]:
    service = Service(busy)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
            for variant in order:
                results[variant].append(batch(service, variant, seconds))
    finally:
        service.stop()
    return results


def report(name: str, results: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n{name} service, 8 threads at depth ~50 "
          f"({len(results['ember'])} rounds; medians):")
    print(f"  {'variant':<8} {'cycles/s':>9} {'CPU/cycle us':>13} {'CPU/s ms':>9} "
          f"{'app switches/s':>15} {'app CPU/s ms':>13} {'app work/s':>11}")
    for variant in VARIANTS:
        rows = results[variant]
        print(f"  {variant:<8} {median(rows, 'rate'):9.1f} "
              f"{median(rows, 'cpu_per_cycle') / 1e3:13.1f} "
              f"{median(rows, 'cpu_per_s') / 1e6:9.3f} {median(rows, 'switches_per_s'):15.1f} "
              f"{median(rows, 'app_cpu_per_s') / 1e6:13.1f} {median(rows, 'work_per_s'):11.1f}")
    ember = results["ember"]
    if ember and "gil_share" in ember[0]:
        print(f"  ember took the GIL at {median(ember, 'gil_share'):.0%} of its wake-ups, "
              f"in {median(ember, 'gil_wait') * 1e6:.0f} us (moving average); mean interval "
              f"{median(ember, 'interval') * 1e3:.1f} ms")


def pair_ratios(results: dict[str, list[dict[str, float]]], a: str, b: str,
                key: str) -> list[float]:
    return [x[key] / y[key] for x, y in zip(results[a], results[b], strict=True) if y[key]]


def extra_switches(results: dict[str, list[dict[str, float]]], variant: str) -> list[float]:
    """The application's context switches per cycle beyond its own (``none``)."""
    return [(x["switches_per_s"] - n["switches_per_s"]) / x["rate"]
            for x, n in zip(results[variant], results["none"], strict=True) if x["rate"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=float, default=2.0, help="seconds per batch")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the four variants")
    parser.add_argument("--only", choices=("idle", "busy"), help="one service only")
    args = parser.parse_args()
    print(f"floor.py: batches of {args.batch} s, {args.rounds} rounds, "
          f"ember implementation {_impl.implementation()}")
    verdicts = []
    if args.only != "busy":
        idle = run(False, args.batch, args.rounds)
        report("idle", idle)
        ratio = statistics.median(pair_ratios(idle, "ember", "native", "cpu_per_s"))
        verdicts.append(("idle: ember CPU/s over native, median of pairs", ratio, 1.5))
    if args.only != "idle":
        busy = run(True, args.batch, args.rounds)
        report("busy", busy)
        ratio = statistics.median(pair_ratios(busy, "ember", "python", "cpu_per_cycle"))
        verdicts.append(("busy: ember CPU/cycle over python, median of pairs", ratio, 1.15))
        rate = statistics.median(pair_ratios(busy, "ember", "python", "rate"))
        verdicts.append(("busy: python rate over ember rate, median of pairs", 1 / rate, 1.0))
        ember_sw = extra_switches(busy, "ember")
        python_sw = extra_switches(busy, "python")
        sw = statistics.median(ember_sw) / max(statistics.median(python_sw), 1e-9)
        print(f"\n  app switches per cycle beyond 'none': ember {statistics.median(ember_sw):.2f}, "
              f"python {statistics.median(python_sw):.2f}")
        verdicts.append(("busy: app switches per cycle, ember over python", sw, 1.1))
        for variant in ("python", "ember"):
            work = statistics.median(pair_ratios(busy, variant, "none", "work_per_s"))
            print(f"  the service's work per second with {variant} beside it / with none: "
                  f"{work:.4f} (median of pairs)")
    print()
    for what, value, limit in verdicts:
        print(f"{what}: {value:.3f} (target <= {limit}): {'PASS' if value <= limit else 'FAIL'}")


if __name__ == "__main__":
    main()
