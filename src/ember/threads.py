"""Which threads a sampler watches, and the labels it samples each of them under.

A :class:`ThreadTable` registers the process's threads with the collector
(ember's own as never sampled, but watched, so their CPU is not taken for a
stranger's), forgets the ones that exited, notices an ident taken over by a
new thread, and keeps each thread's labels: its name, and the request it
serves now (``ember.attribution``). In cpu mode only the threads on CPU at an
instant are sampled, so only they are relabelled, and on an event loop thread
the period is credited to the task running there. When the collector cannot
sample a cycle alone (threads to register, more than ``max_threads``), the
table does the rest of it (:meth:`ThreadTable.catch_up`).
"""

from __future__ import annotations

import gc
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ember._process import EmberThread, sampler_idents
from ember.attribution import current_task
from ember.attribution import registry as requests
from ember.profile import Labels

REFRESH_NS = 1_000_000_000
"""How often thread names and the list of live threads are re-read."""
MAX_LABEL_SETS = 4096
"""Cached (thread name, request) label sets at most; the cache starts over beyond."""

# threading's ident -> Thread registry, compared once per cycle (in C, Threads by
# identity) to notice a thread that started or exited, e.g. one that took a dead
# thread's ident. Without it (another Python), threads are re-read every second.
ACTIVE: dict[int, threading.Thread] = getattr(threading, "_active", {})


class ThreadTable:
    """The threads of one sampler's collector; see the module docstring."""

    def __init__(self, collector: Any, waker: Any, *, cpu_mode: bool, max_threads: int,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.collector = collector
        self.waker = waker
        self.cpu_mode = cpu_mode
        self.max_threads = max_threads
        self.clock = clock
        self.next_refresh = 0
        self.registered: dict[int, threading.Thread | None] = {}
        self.skipped: set[int] = set()  # ember's own threads, registered as never sampled
        self._seen: dict[int, threading.Thread] = {}
        self._requests_seen = -1
        self._applied: dict[int, Labels] = {}
        self._request_of: dict[int, Labels | None] = {}  # cpu mode: last request applied
        self._label_sets: dict[tuple[str, Labels | None], Labels] = {}

    def changed(self) -> bool:
        """Whether a thread started or exited since the last registration."""
        return self._seen != ACTIVE

    def refresh(self, frames: dict[int, Any]) -> set[int]:
        """Register the threads in ``frames`` and forget those gone.

        Returns the idents registered afresh: new threads, and threads that
        reuse the ident of one that exited (idents are recycled at once).
        """
        collector, registered = self.collector, self.registered
        self._seen = dict(ACTIVE)
        collector.watch(ACTIVE, self.cpu_mode, self.max_threads)
        known = {t.ident: t for t in threading.enumerate()}
        fresh = set()
        for ident in frames:
            thread = known.get(ident)
            if isinstance(thread, EmberThread) or ident in sampler_idents:
                if registered.get(ident, None) is not thread:
                    # None: never sampled; its CPU is watched so it is not "unknown"
                    collector.set_thread(ident, (thread.native_id or 0) if thread else 0, None)
                    registered[ident] = thread
                    self.skipped.add(ident)
                continue
            self.skipped.discard(ident)
            if thread is None:  # unknown to threading: no CPU clock, wall mode only
                if ident not in registered and ident not in sampler_idents:
                    collector.set_thread(ident, 0, (("thread", f"thread-{ident}"),))
                    registered[ident] = None
                    fresh.add(ident)
                continue
            if registered.get(ident, thread) is not thread or ident not in registered:
                collector.drop_thread(ident)
                fresh.add(ident)
            registered[ident] = thread
            self._request_of.pop(ident, None)
            labels = self._applied[ident] = self.labels_of(ident, thread)
            collector.set_thread(ident, thread.native_id or 0, labels)
        for ident in registered.keys() - frames.keys():
            collector.drop_thread(ident)
            del registered[ident]
            self._applied.pop(ident, None)
            self._request_of.pop(ident, None)
            self.skipped.discard(ident)
        self.next_refresh = self.clock() + REFRESH_NS
        return fresh

    def catch_up(self, now: int, cycle_ns: int, taken: int, rng: random.Random, *,
                 leave_out_caller: bool) -> int:
        """The rest of a sampling cycle the collector could not do alone (the
        sampler's lock held; the garbage collector off meanwhile, as in
        ``Collector.cycle``). Returns the samples taken in the whole cycle.

        ``taken >= 0``: it sampled what it knew; register the threads it found
        missing or gone and sample them. ``taken < 0``: nothing sampled yet:
        register threads if due, choose ``max_threads`` of them at random if
        there are more, and sample them. ``leave_out_caller``: a test calls the
        cycle directly, from a thread that is not to be sampled.
        """
        collector = self.collector
        frames = collector.take_pending()
        enabled = gc.isenabled()
        if enabled:
            gc.disable()
        try:
            if frames is None:
                frames = sys._current_frames()
                if collector.stopping:  # stop() may be on a sampled stack: record none of it
                    return 0
                if leave_out_caller:
                    frames.pop(threading.get_ident(), None)
            cpu_mode = self.cpu_mode
            if taken < 0:
                # A thread started or exited (its ident may now be another thread's),
                # or names are due for a re-read: register threads before sampling.
                if now >= self.next_refresh or self.changed():
                    self.refresh(frames)
                chosen = frames
                if len(frames) > self.max_threads:
                    # ember's own threads are never sampled: keep them out of the draw.
                    candidates = [k for k in frames if k not in self.skipped]
                    keys = rng.sample(candidates, min(self.max_threads, len(candidates)))
                    chosen = {k: frames[k] for k in keys}
                taken = collector.collect(chosen, now, cycle_ns, cpu_mode)
            else:
                chosen = frames
            # Threads still unknown, or whose clock died: register and sample them.
            if collector.missing or collector.gone:
                fresh = self.refresh(frames)
                if fresh:
                    taken += collector.collect({k: chosen[k] for k in fresh if k in chosen},
                                               now, cycle_ns, cpu_mode)
            return int(taken)
        finally:
            if enabled:
                gc.enable()

    # -- labels -------------------------------------------------------------------
    def follow(self) -> None:
        """Label the threads about to be sampled with their requests now."""
        if self.cpu_mode:
            if requests.active:
                self._follow_on_cpu()
        elif requests.version != self._requests_seen:
            self._requests_seen = requests.version
            self.relabel(list(self._applied))
        elif requests.loop_threads():
            self.relabel(list(requests.loop_threads()))

    def _follow_on_cpu(self) -> None:
        """Cpu mode: relabel the threads on CPU at the instant (the others when they
        next are), and credit the period to the task on an event loop thread: the
        per-request CPU of asyncio requests, the same estimate as the samples'."""
        loops = requests.loop_threads()
        period = self.waker.period_ns
        request_of = self._request_of
        for ident in self.collector.on_cpu_idents():
            loop = loops.get(ident) if loops else None
            task = current_task(loop) if loop is not None else None
            if task is not None:  # between tasks: the loop's own work, nobody's request
                requests.credit_task(task, period)
            request = requests.labels_of_task(task, ident)
            if request is request_of.get(ident, ()):  # the same endpoint: the same object
                continue
            request_of[ident] = request
            thread = self.registered.get(ident)
            if thread is None or ident not in self._applied:  # unknown, or never sampled
                continue
            self._apply(ident, thread, self.with_thread_name(thread.name, request))

    def relabel(self, idents: Iterable[int]) -> None:
        """Re-apply request labels to registered threads whose labels changed."""
        for ident in idents:
            thread = self.registered.get(ident)
            if thread is None or ident not in self._applied:  # unknown, or never sampled
                continue
            self._apply(ident, thread, self.labels_of(ident, thread))

    def _apply(self, ident: int, thread: threading.Thread, labels: Labels) -> None:
        if labels != self._applied[ident]:
            self._applied[ident] = labels
            self.collector.set_thread(ident, thread.native_id or 0, labels)

    def labels_of(self, ident: int, thread: threading.Thread) -> Labels:
        """The thread's name, with the labels of the request it serves now."""
        return self.with_thread_name(thread.name, requests.labels_of(ident))

    def with_thread_name(self, name: str, request: Labels | None) -> Labels:
        """``request``'s labels and the thread's name, as one (cached) label set."""
        key = (name, request)
        labels = self._label_sets.get(key)
        if labels is None:
            if len(self._label_sets) >= MAX_LABEL_SETS:  # names and endpoints are bounded
                self._label_sets.clear()
            base = (("thread", name),)
            labels = self._label_sets[key] = tuple(sorted(base + request)) if request else base
        return labels
