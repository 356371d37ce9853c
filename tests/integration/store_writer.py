"""A worker process writing synthetic windows into a store file (run by the
store's multi-process tests and benchmark):

    python store_writer.py PATH PID COUNT [ROWS] [FIRST] [T0]

writes windows FIRST..FIRST+COUNT-1 of worker PID (``store_windows.window(T0 +
10 * i, pid=PID)``), printing ``begin I`` before each one's write and ``wrote I``
after its commit (and, at the end, ``cpu MEAN P50 P99 MAX``: the writing
thread's CPU per window, in ms).
"""

from __future__ import annotations

import sys
import time

import store_windows as sw
from ember.store.sqlite import SqliteStore

T0 = 1_700_000_000.0


def main(argv: list[str]) -> None:
    path, pid, count = argv[0], int(argv[1]), int(argv[2])
    rows = int(argv[3]) if len(argv) > 3 else 150
    first = int(argv[4]) if len(argv) > 4 else 0
    t0 = float(argv[5]) if len(argv) > 5 else T0
    store = SqliteStore(path, clock=lambda: t0 + 600)
    spent = []
    for i in range(first, first + count):
        window = sw.window(t0 + 10 * i, pid=pid, rows=rows)
        print("begin", i, flush=True)
        before = time.thread_time()
        store.write(window)
        spent.append(time.thread_time() - before)
        print("wrote", i, flush=True)
    store.close()
    spent.sort()
    print("cpu", 1000 * sum(spent) / len(spent), 1000 * spent[len(spent) // 2],
          1000 * spent[min(len(spent) - 1, len(spent) * 99 // 100)], 1000 * spent[-1], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
