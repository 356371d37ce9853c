"""Garbage-collector pauses, measured with ``gc.callbacks``.

A sampler never sees the collector (it needs the GIL the collector holds),
so pauses are timed directly. The callback runs inside the collector on
whichever thread triggered it: it does one clock read and one addition.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_pause_ns_total = 0


def pause_ns_total() -> int:
    """Collector pause time of this process since ember was imported (all threads).

    Requests read it at start and end for their GC time. Collections pause
    every thread, so a request's GC time is the pauses during its lifetime.
    """
    return _pause_ns_total


_started = 0


def _total_callback(phase: str, info: dict[str, Any]) -> None:
    global _started, _pause_ns_total
    if phase == "start":
        _started = time.perf_counter_ns()
    elif _started:
        _pause_ns_total += time.perf_counter_ns() - _started
        _started = 0


gc.callbacks.append(_total_callback)


class GcMonitor:
    """Counts collections and pause seconds per generation while installed."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.pause_ns = [0, 0, 0]
        self._started = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            gen = info.get("generation", 2)
            self.counts[gen] += 1
            self.pause_ns[gen] += time.perf_counter_ns() - self._started
            self._started = 0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        while self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def peek(self) -> dict[int, tuple[int, float]]:
        """Pauses since the last take, without resetting them."""
        return {gen: (self.counts[gen], self.pause_ns[gen] / 1e9)
                for gen in range(3) if self.counts[gen]}

    def take(self) -> dict[int, tuple[int, float]]:
        """Pauses since the last take: generation -> (collections, seconds)."""
        out = self.peek()
        self.counts = [0, 0, 0]
        self.pause_ns = [0, 0, 0]
        return out
