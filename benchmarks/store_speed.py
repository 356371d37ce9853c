"""What the SQLite store costs: CPU of the flushing thread per window with 8
worker processes writing into one file at once, and the time of a query over
one hour of 10 s windows from those 8 workers.

Each worker (tests/integration/store_writer.py) writes 360 synthetic windows of
realistic shape (tests/store_windows.py: ~200 (stack, labels) rows of 6-28
frames over 6 endpoints, request summaries, GC pauses), as fast as it can, so
the 8 contend for the file's write lock far more than 8 real workers sealing
every 10 s would; the CPU of each write is ``time.thread_time()`` around
``SqliteStore.write`` (the waits for the lock cost no CPU). Then the file holds
one hour of 8 workers, and the merged profile and the endpoint table are
queried (the first query cold, then the median of 5).

    python benchmarks/store_speed.py [--workers 8] [--windows 360] [--rows 200]

Targets: < 5 ms CPU per window flushed; < 300 ms for the hour's query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from ember.store.sqlite import SqliteStore  # noqa: E402

WRITER = ROOT / "tests" / "integration" / "store_writer.py"
FLUSH_TARGET_MS = 5.0
QUERY_TARGET_MS = 300.0


def flush(path: str, workers: int, windows: int, rows: int, t0: float) -> list[list[float]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]))
    procs = [subprocess.Popen([sys.executable, str(WRITER), path, str(1000 + k), str(windows),
                               str(rows), "0", str(t0)], stdout=subprocess.PIPE, text=True,
                              env=env) for k in range(workers)]
    figures = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a writer failed ({proc.returncode})")
        line = next(line for line in out.splitlines() if line.startswith("cpu"))
        figures.append([float(x) for x in line.split()[1:]])
    return figures


def timed(function: object) -> float:
    before = time.perf_counter()
    function()  # type: ignore[operator]
    return 1000 * (time.perf_counter() - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--windows", type=int, default=360, help="per worker (360: one hour)")
    parser.add_argument("--rows", type=int, default=200, help="value rows per window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ember.db")
        t0 = time.time() - 10 * args.windows
        began = time.perf_counter()
        figures = flush(path, args.workers, args.windows, args.rows, t0)
        wall = time.perf_counter() - began
        means = [f[0] for f in figures]
        p99 = max(f[2] for f in figures)
        worst = max(f[3] for f in figures)
        mean = statistics.mean(means)
        total = args.workers * args.windows
        print(f"flush: {args.workers} writers x {args.windows} windows x ~{args.rows} rows "
              f"({total} windows in {wall:.1f} s, {total / wall:.0f}/s)")
        print(f"  flushing thread CPU per window: mean {mean:.2f} ms, worst writer's mean "
              f"{max(means):.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms (first, cold) "
              f"-> {'PASS' if max(means) < FLUSH_TARGET_MS else 'FAIL'} "
              f"(target < {FLUSH_TARGET_MS} ms)")
        size = sum(os.path.getsize(f) for f in (path, path + "-wal") if os.path.exists(f))
        print(f"  file: {size / 1e6:.1f} MB ({size / total / 1e3:.1f} kB per window)")
        store = SqliteStore(path)
        try:
            hour = t0 - 1, t0 + 10 * args.windows
            result = store.query(*hour)
            assert result.windows == total, result.windows
            cold = timed(lambda: store.query(*hour))
            warm = statistics.median(timed(lambda: store.query(*hour)) for _ in range(5))
            one = statistics.median(timed(lambda: store.query(*hour, endpoint="POST /orders"))
                                    for _ in range(5))
            print(f"query: one hour of {args.workers} workers ({total} windows, "
                  f"{len(result.profile.values)} (stack, labels) rows, "
                  f"{len(result.summary.endpoints)} endpoints)")
            print(f"  merged profile + endpoint table: first {cold:.0f} ms, median {warm:.0f} ms "
                  f"-> {'PASS' if warm < QUERY_TARGET_MS else 'FAIL'} "
                  f"(target < {QUERY_TARGET_MS:.0f} ms)")
            print(f"  one endpoint: median {one:.0f} ms")
        finally:
            store.close()


if __name__ == "__main__":
    main()
