"""Sampler overhead in a busy service, measured from inside and from outside.

The "service" is a child process: eight threads each serve requests (the
handlers of ``ember.demo``: JSON round trip, string rendering, hashing) at a
stack depth of about 50 frames, sampled by one ``ember.Sampler`` with the
production defaults (cpu mode, 100 Hz, 1% budget). The child prints its pid
and the sampler thread's kernel id; the parent reads the child's CPU clocks
from ``/proc`` when the workers start and again when they stop:

- the sampler thread's CPU: ``/proc/PID/task/TID/schedstat``, first field (ns);
- the process's CPU: ``utime + stime`` of ``/proc/PID/stat`` (clock ticks),
  and the sum of every task's schedstat.

It prints the sampler's share of the process's CPU from outside next to what
the sampler reports about itself (``stats()["process_cpu_share"]``). Target:
<= 0.5% of the service's CPU, judged on the medians over ``--repeats`` runs
of each implementation (one child per run, implementations alternating). The
rate the sampler reaches depends on how soon the busy threads hand it the GIL,
and varies from run to run: hence several runs.

    python benchmarks/overhead.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ember import Sampler
from ember.demo import HANDLERS
from stacks import at_depth
from ticker import Ticker

IMPLEMENTATIONS = ("cython", "python")
FLOOR = "ticker"
"""Not a sampler: a thread that only wakes and takes the GIL (``ticker.py``)."""
TARGET_SHARE = 0.005


# -- the service (child process) ----------------------------------------------
def serve(gate: threading.Event, done: threading.Event) -> None:
    """Handle requests while ``gate`` is open, until ``done``."""
    while True:
        gate.wait()
        if done.is_set():
            return
        for handler, rounds in HANDLERS.items():
            handler(rounds)


def service(implementation: str, seconds: float, threads: int, depth: int) -> None:
    """Run the service; talk to the parent over stdin/stdout, one JSON line each way."""
    gate, done = threading.Event(), threading.Event()
    # serve() at depth - 1: the handlers' own frames sit at about ``depth``.
    workers = [threading.Thread(target=at_depth, args=(depth - 1, serve, gate, done),
                                name=f"worker-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    sampler: Sampler | Ticker
    if implementation == FLOOR:
        sampler = Ticker()
        sampler.start()
    else:
        sampler = Sampler(implementation=implementation)
        sampler.start()
    while not sampler.stats()["native_id"]:
        time.sleep(0.001)
    tell({"pid": os.getpid(), "native_id": sampler.stats()["native_id"],
          "implementation": getattr(sampler, "implementation", FLOOR)})
    sys.stdin.readline()  # the parent has read its baseline
    gate.set()
    time.sleep(seconds)
    gate.clear()
    time.sleep(0.1)  # every worker finishes its request and waits at the gate
    tell({"stats": sampler.stats()})
    sys.stdin.readline()  # the parent has read the final figures
    done.set()
    gate.set()
    for worker in workers:
        worker.join()
    if isinstance(sampler, Sampler):
        sampler.stop()


def tell(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


# -- the measurement (parent process) -----------------------------------------
def schedstat_ns(path: Path) -> int:
    return int(path.read_text().split()[0])


def read_clocks(pid: int, sampler_tid: int) -> dict[str, Any]:
    """The child's CPU clocks as the kernel reports them, in nanoseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    tasks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # task exited
            tasks[int(task.name)] = schedstat_ns(task / "schedstat")
    return {
        "sampler": tasks[sampler_tid],
        "stat": (utime + stime) * 1_000_000_000 // os.sysconf("SC_CLK_TCK"),
        "tasks": tasks,
    }


def run_service(implementation: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--service", implementation,
               "--seconds", str(args.seconds), "--threads", str(args.threads),
               "--depth", str(args.depth)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        hello = json.loads(child.stdout.readline())
        pid, tid = hello["pid"], hello["native_id"]
        before = read_clocks(pid, tid)
        child.stdin.write("\n")
        child.stdin.flush()
        stats = json.loads(child.stdout.readline())["stats"]
        after = read_clocks(pid, tid)
        child.stdin.write("\n")
        child.stdin.flush()
        if child.wait() != 0:
            raise SystemExit(f"the {implementation} service exited with {child.returncode}")
    sampler_ns = after["sampler"] - before["sampler"]
    tasks_ns = sum(ns - before["tasks"].get(t, 0) for t, ns in after["tasks"].items())
    stat_ns = after["stat"] - before["stat"]
    return {
        "implementation": hello["implementation"],
        "cycles_per_s": stats["cycles"] / args.seconds,
        "samples": stats["samples"],
        "process_s": tasks_ns / 1e9,
        "inside_sampler_s": stats["sampler_cpu"],
        "inside_share": stats["process_cpu_share"],
        "outside_sampler_s": sampler_ns / 1e9,
        "outside_share_tasks": sampler_ns / tasks_ns,
        "outside_share_stat": sampler_ns / stat_ns,
        "inside_us_per_cycle": stats["sampler_cpu"] * 1e6 / max(stats["cycles"], 1),
        "outside_us_per_cycle": sampler_ns / 1e3 / max(stats["cycles"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="service run time per implementation (20)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (8)")
    parser.add_argument("--depth", type=int, default=50, help="their stack depth (50)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per implementation, alternating; medians are judged (3)")
    parser.add_argument("--implementation", choices=(*IMPLEMENTATIONS, FLOOR), action="append",
                        help="run only this implementation (repeatable; default: both); "
                        f"{FLOOR}: no sampler, a thread that only wakes like one and takes "
                        "the GIL (the floor of any in-process sampler)")
    parser.add_argument("--service", choices=(*IMPLEMENTATIONS, FLOOR), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.service:
        service(args.service, args.seconds, args.threads, args.depth)
        return 0

    implementations = args.implementation or IMPLEMENTATIONS
    print(f"overhead: {args.threads} worker threads at stack depth ~{args.depth} on "
          f"{os.cpu_count()} CPUs, cpu mode, 100 Hz, 1% budget, {args.seconds:g} s per run")
    print("  sampler CPU: inside = stats()['sampler_cpu'], outside = the sampler task's "
          "schedstat;\n  share = sampler CPU / process CPU (inside: stats()['process_cpu_share'];"
          " outside: / sum of all tasks' schedstat, and / utime+stime of /proc/PID/stat)")
    print(f"  {'impl':<7} {'cycles/s':>8} {'samples':>8} {'process':>8} | "
          f"{'inside':>8} {'per cycle':>9} {'share':>7} | {'outside':>8} {'per cycle':>9} "
          f"{'share':>7} {'(stat)':>7}")
    results: dict[str, list[dict[str, float]]] = {impl: [] for impl in implementations}
    for _ in range(args.repeats):
        for impl in implementations:
            r = run_service(impl, args)
            results[impl].append(r)
            print(f"  {r['implementation']:<7} {r['cycles_per_s']:8.1f} {r['samples']:8.0f} "
                  f"{r['process_s']:7.2f}s | {r['inside_sampler_s'] * 1e3:6.1f}ms "
                  f"{r['inside_us_per_cycle']:7.1f}us {100 * r['inside_share']:6.3f}% | "
                  f"{r['outside_sampler_s'] * 1e3:6.1f}ms {r['outside_us_per_cycle']:7.1f}us "
                  f"{100 * r['outside_share_tasks']:6.3f}% {100 * r['outside_share_stat']:6.3f}%")
    ok = True
    for impl, runs in results.items():
        inside = statistics.median(r["inside_share"] for r in runs)
        outside = statistics.median(r["outside_share_tasks"] for r in runs)
        if impl == FLOOR:
            print(f"floor: a thread that only wakes at 100 Hz and takes the GIL costs "
                  f"{100 * inside:.3f}% of the service's CPU ({100 * outside:.3f}% from /proc)")
            continue
        passed = max(inside, outside) <= TARGET_SHARE
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'}: {impl}: sampler share of the service's CPU "
              f"{100 * inside:.3f}% by stats(), {100 * outside:.3f}% from /proc "
              f"(target <= {100 * TARGET_SHARE:g}%)")
    print(f"{'PASS' if ok else 'FAIL'}: overhead target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
