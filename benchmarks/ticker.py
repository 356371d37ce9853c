"""A thread that wakes like the sampler and takes the GIL, and does nothing else.

The floor under any in-process sampler at 100 Hz: its own CPU (the timed wait,
the wake-up, acquiring the GIL) and the GIL hand-offs it forces on the
application's threads. ``server_overhead.py --variant ticker`` and
``overhead.py --implementation ticker`` run it where ember's sampler would run.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any


class Ticker(threading.Thread):
    """Waits like the sampler (``Lock.acquire`` with a timeout drawn uniformly
    from 5-15 ms), then holds the GIL for one loop iteration."""

    def __init__(self) -> None:
        super().__init__(name="ticker", daemon=True)
        self.cycles = 0
        self.cpu_ns = 0
        self.native = 0
        self._started_cpu = time.process_time_ns()

    def run(self) -> None:
        self.native = threading.get_native_id()
        lock = threading.Lock()
        lock.acquire()
        start = time.thread_time_ns()
        while True:
            lock.acquire(True, random.uniform(0.005, 0.015))
            self.cycles += 1
            self.cpu_ns = time.thread_time_ns() - start

    def stats(self) -> dict[str, Any]:
        """The fields of ``Sampler.stats()`` the benchmarks read."""
        process = max(time.process_time_ns() - self._started_cpu, 1)
        return {"native_id": self.native, "cycles": self.cycles, "samples": 0,
                "sampler_cpu": self.cpu_ns / 1e9, "process_cpu_share": self.cpu_ns / process}
