"""Garbage-collector pauses, measured with ``gc.callbacks``.

A sampler never sees the collector (it needs the GIL the collector holds),
so pauses are timed directly. One process-wide hook, installed on import,
keeps collections and pause time per generation; it runs inside the collector
on whichever thread triggered it and does one clock read and two additions.
Requests and samplers read differences of these totals.
"""

from __future__ import annotations

import gc
import time
from typing import Any

_counts = [0, 0, 0]
_pause_ns = [0, 0, 0]
_started = 0


def _callback(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter_ns()
    elif _started:
        gen = info.get("generation", 2)
        _counts[gen] += 1
        _pause_ns[gen] += time.perf_counter_ns() - _started
        _started = 0


gc.callbacks.append(_callback)


def pause_ns_total() -> int:
    """Collector pause time of this process since ember was imported (all threads).

    Requests read it at start and end for their GC time. Collections pause
    every thread, so a request's GC time is the pauses during its lifetime.
    """
    return _pause_ns[0] + _pause_ns[1] + _pause_ns[2]


class GcMonitor:
    """Collections and pause time per generation while installed (a sampler's
    windows), as differences of the process-wide totals."""

    def __init__(self) -> None:
        self._counts = [0, 0, 0]
        self._pause_ns = [0, 0, 0]
        self._base: tuple[list[int], list[int]] | None = None  # None: not installed

    def install(self) -> None:
        if self._base is None:
            self._base = (list(_counts), list(_pause_ns))

    def uninstall(self) -> None:
        self._fold()
        self._base = None

    def _fold(self) -> None:
        """Add what happened since the baseline, and move the baseline to now."""
        if self._base is None:
            return
        counts, pause_ns = list(_counts), list(_pause_ns)
        for gen in range(3):
            self._counts[gen] += counts[gen] - self._base[0][gen]
            self._pause_ns[gen] += pause_ns[gen] - self._base[1][gen]
        self._base = (counts, pause_ns)

    def peek_ns(self) -> dict[int, tuple[int, int]]:
        """Pauses since the last take, without resetting them: generation ->
        (collections, pause ns)."""
        self._fold()
        return {gen: (self._counts[gen], self._pause_ns[gen])
                for gen in range(3) if self._counts[gen]}

    def take_ns(self) -> dict[int, tuple[int, int]]:
        """Pauses since the last take: generation -> (collections, pause ns)."""
        out = self.peek_ns()
        self._counts = [0, 0, 0]
        self._pause_ns = [0, 0, 0]
        return out

    def peek(self) -> dict[int, tuple[int, float]]:
        """:meth:`peek_ns` in seconds."""
        return as_seconds(self.peek_ns())

    def take(self) -> dict[int, tuple[int, float]]:
        """:meth:`take_ns` in seconds: generation -> (collections, seconds)."""
        return as_seconds(self.take_ns())


def as_seconds(pauses: dict[int, tuple[int, int]]) -> dict[int, tuple[int, float]]:
    """Pauses per generation with their time in seconds (as ``Metadata.gc`` holds them)."""
    return {gen: (count, pause_ns / 1e9) for gen, (count, pause_ns) in pauses.items()}
