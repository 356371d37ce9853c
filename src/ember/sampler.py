"""The sampling engine: a daemon thread that samples every other thread.

The thread waits in the waker (``ember._wake``, Cython or its twin) for each
sampling instant, a randomised interval after the last. The waker observes
which threads are on CPU at the instant; in cpu mode an instant without one
ends there, and otherwise the sampler takes ``sys._current_frames()`` and
hands them to the collector (``ember._capture``), which samples the threads
that were on CPU. Every ``window`` seconds the collected tables are sealed
into a :class:`~ember.window.Window` (``ember.sealing``), with the summaries
of the requests that finished meanwhile, kept in a bounded in-memory history
(:class:`ember.window.History`: ``max_windows`` windows, ``max_history_bytes``)
and handed to the sampler's window sinks (:class:`ember.window.WindowSink`),
outside the sampler's lock, in order, at stop and at exit too.
The sampler measures its own CPU time and stretches its interval to stay
within its budget, never beyond ``max_interval``. Nothing that goes wrong
inside it reaches the application: errors are counted and logged once.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ember import _impl, _process, middleware
from ember._process import EmberThread, repair_native_id, sampler_idents
from ember.config import Config
from ember.errors import ProfilerStateError
from ember.profile import Profile, merge
from ember.sealing import Sealer
from ember.summary import FinishedRequest, WindowSummary
from ember.threads import ThreadTable
from ember.window import Window, WindowSink

log = logging.getLogger("ember")

MAX_CONSECUTIVE_ERRORS = 100
"""After this many failing cycles in a row the sampler stops itself."""
COST_SMOOTHING = 0.1
"""Weight of the newest wake-up in the moving average of the cost per wake-up."""
UNKNOWN_QUIET_NS = 1_000_000_000
"""After a look for new threads found none although unknown threads used CPU
(native threads of a C library), how long the waker stops asking for another."""

_live_samplers: weakref.WeakSet[Sampler] = weakref.WeakSet()

_warned_untruthful = False
_learned_cost_ns = 0.0
"""The cost per wake-up the last running sampler of this process measured."""


def _remember_cost(cost_ns: float) -> None:
    global _learned_cost_ns
    _learned_cost_ns = cost_ns

__all__ = ["EmberThread", "Sampler", "running_samplers"]


class Sampler:
    """Samples the stacks of this process's threads; see the module docstring."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        rng: random.Random | None = None,
        implementation: str | None = None,
        sinks: Iterable[WindowSink] = (),
        **settings: Any,
    ) -> None:
        if config is not None and settings:
            raise TypeError("pass either a Config or keyword settings, not both")
        self.config = config if config is not None else Config.from_env(**settings)
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._capture = _impl.module("capture", implementation)
        self._wake = _impl.module("wake", implementation)
        self.implementation = "python" if self._capture.__name__.endswith("_py") else "cython"
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._sealer = Sealer(self.config, fresh_ids=self.implementation == "cython",
                              clock=clock, sinks=sinks)
        self.observe_request: Callable[[FinishedRequest], None] = self._sealer.requests.observe
        """Record a finished request in the open window's summaries: registered in
        ``ember.middleware.OBSERVERS`` while the sampler runs (one recorder for the
        sampler's life, so the registered method stays the right one)."""
        self._reset_state()
        _live_samplers.add(self)

    def _reset_state(self) -> None:
        cfg = self.config
        self._lock = threading.Lock()
        self._waker = self._wake.Waker(self._rng.getrandbits(64), cfg.gil_handoff)
        self._collector = self._capture.Collector(cfg.max_stacks, cfg.max_depth, cfg.lines,
                                                  self._waker)
        self._interval_ns = int(cfg.interval * 1e9)
        # A sampler started again (a test, a toggle, a fork child) starts from the
        # cost per wake-up the last one learned, not from none: no burst at full rate.
        self._cost_ns = _learned_cost_ns
        self._gil_wait_ns = 0.0
        self._unknown_quiet_until = 0
        self._last_cycle = 0
        self._cpu_mode = cfg.mode == "cpu"
        self._threads = ThreadTable(self._collector, self._waker, cpu_mode=self._cpu_mode,
                                    max_threads=cfg.max_threads, clock=self._clock)
        self._started_ns = self._clock()
        self._sealer.begin(self._started_ns)
        self._started_cpu = time.process_time_ns()
        self._own_cpu_ns = 0
        self._samples = 0
        self._cycles = 0
        self._errors = 0
        self._consecutive_errors = 0
        self._truncated = 0
        self._native_id = 0
        self._waker.begin(self._started_ns, self._interval_ns)

    # -- control ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Sampler:
        """Start the sampling thread. Starting a running sampler is an error."""
        if self.running:
            raise ProfilerStateError("sampler is already running")
        repair_native_id()
        self._reset_state()
        self._stopping = False
        self._sealer.gc.install()
        if self.observe_request not in middleware.OBSERVERS:
            middleware.OBSERVERS.append(self.observe_request)
        self._thread = EmberThread(target=self._run, name="ember-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Profile:
        """Stop sampling, seal the last window (the sinks get it, then ``flush()``)
        and return the whole profile."""
        thread = self._thread
        self._request_stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None
        self._finish()
        return self.profile()

    def _finish(self, timeout: float = -1) -> None:
        """The sampling thread is gone (or going): seal the last window and flush the
        sinks (``timeout``: how long to wait for the lock at most; -1: as long as it takes)."""
        self._sealer.gc.uninstall()
        with contextlib.suppress(ValueError):
            middleware.OBSERVERS.remove(self.observe_request)
        if not self._lock.acquire(timeout=timeout):
            return
        try:
            self._seal(self._clock())
        finally:
            self._lock.release()
        self._sealer.sinks.flush()

    # -- sinks ----------------------------------------------------------------------
    def add_sink(self, sink: WindowSink) -> None:
        """Hand the windows sealed from now on to ``sink`` as well (kept across restarts)."""
        self._sealer.sinks.add(sink)

    def remove_sink(self, sink: WindowSink) -> None:
        self._sealer.sinks.remove(sink)

    @property
    def sinks(self) -> list[WindowSink]:
        return list(self._sealer.sinks)

    # -- the sampling thread ------------------------------------------------------
    def _run(self) -> None:
        ident = threading.get_ident()
        sampler_idents.add(ident)
        self._native_id = threading.get_native_id()
        self._warn_if_untruthful()
        waker, wake = self._waker, self._wake
        # The sampler's whole cost, waking up included, is what the budget and
        # stats() count: the CPU clock is read once per loop, never reset.
        last_cpu = time.thread_time_ns()
        last_wakes = waker.wakes
        waker.begin(time.monotonic_ns(), self._interval_ns)
        try:
            while True:
                interval = self._mean_interval_ns()
                until = min(self._sealer.seal_at, self._threads.next_refresh,
                            time.monotonic_ns() + 10**12)
                watch_unknown = interval // 2 if self._clock() >= self._unknown_quiet_until else 0
                code = waker.wait(interval, int(until), self._cpu_mode, watch_unknown)
                if code == wake.STOPPED or self._stopping or sys.is_finalizing():
                    break
                try:
                    if code == wake.WAKE:
                        self._gil_wait_ns += COST_SMOOTHING * (waker.gil_wait_ns
                                                               - self._gil_wait_ns)
                        self._cycle(waker.wake_ns)
                    else:
                        self._housekeeping(watch_unknown > 0
                                           and waker.unknown_ns > watch_unknown)
                    self._consecutive_errors = 0
                except Exception:
                    self._on_error()
                    if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                        log.error("ember: sampler stopped after %d failing cycles in a row",
                                  self._consecutive_errors)
                        break
                now_cpu = time.thread_time_ns()
                cost, last_cpu = now_cpu - last_cpu, now_cpu
                wakes, last_wakes = max(waker.wakes - last_wakes, 1), waker.wakes
                self._own_cpu_ns += cost
                # Each wake-up since the last return weighs in the average alike.
                weight = 1 - (1 - COST_SMOOTHING) ** wakes
                self._cost_ns += weight * (cost / wakes - self._cost_ns)
                _remember_cost(self._cost_ns)
        finally:
            sampler_idents.discard(ident)
            self._stopping = True  # a sampler that gave up stays stopped, even in a fork child

    def _warn_if_untruthful(self) -> None:
        """Say once per process when sampling instants cannot be kept exactly."""
        global _warned_untruthful
        if self.truthful or _warned_untruthful or not self._cpu_mode:
            return
        _warned_untruthful = True
        why = ("the pure-Python implementation runs" if self.implementation == "python"
               else "gil_handoff is off" if not self.config.gil_handoff
               else "this Python cannot hand the GIL over on request (needs CPython 3.11)")
        log.warning("ember: %s, so the sampler sees a thread only when it lets go of the "
                    "GIL: CPU bursts shorter than the switch interval between I/O calls "
                    "are under-sampled and their time shows on the I/O calls", why)

    @property
    def truthful(self) -> bool:
        """Whether samples are taken at the instant observed without the GIL and
        the GIL is taken within tens of microseconds of it (see ``ember._wake``)."""
        return self.implementation == "cython" and bool(self._waker.fast_gil)

    def _request_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._collector.stopping = True
            self._waker.stop()

    def _on_error(self) -> None:
        self._errors += 1
        self._consecutive_errors += 1
        if self._errors == 1:
            log.exception("ember: error inside the sampler (counted, logged once)")

    def _mean_interval_ns(self) -> int:
        """The budget-adjusted mean interval (the waker randomises each one +-50%)."""
        cfg = self.config
        base = cfg.interval * 1e9
        mean = base
        if cfg.budget > 0 and self._cost_ns > 0:
            mean = min(max(base, self._cost_ns / cfg.budget), cfg.max_interval * 1e9)
        self._interval_ns = int(mean)
        return self._interval_ns

    def sample_once(self) -> int:
        """Observe the threads now and sample those that used CPU since the last
        look (tests call this directly; the sampling thread observes at the
        instant, in the waker, then runs :meth:`_cycle`)."""
        now = self._clock()
        self._waker.observe_now(now, self._cpu_mode)
        return self._cycle(now)

    def _cycle(self, now: int) -> int:
        """Sample the instant the waker observed (the common cycle is one call
        into the collector, ``Collector.cycle``).

        ``Collector.cycle`` takes ``sys._current_frames()`` and samples the
        registered threads with the garbage collector off: a collection
        triggered by an allocation inside ``sys._current_frames()`` (which
        holds the runtime's thread-list lock on 3.11) could run a weakref
        callback that releases the GIL to a thread blocked on that lock, a
        deadlock seen in this project's tests; and nothing may release the GIL
        mid-walk. Registering threads, and choosing among too many, is
        ``ThreadTable.catch_up``, in Python.
        """
        last, self._last_cycle = self._last_cycle, now
        cycle_ns = now - last if last else self._interval_ns
        with self._lock:
            self._threads.follow()  # the threads about to be sampled: their requests now
            # Names due for a re-read: register threads first (the collector itself
            # notices threads that started or exited, and too many threads).
            collector = self._collector
            taken = -1
            if now < self._threads.next_refresh:
                # Leave out the caller when a test calls this directly.
                taken = collector.cycle(now, cycle_ns,
                                        0 if self._thread is not None else threading.get_ident())
            if taken < 0 or collector.missing or collector.gone:
                taken = self._threads.catch_up(now, cycle_ns, taken, self._rng,
                                               leave_out_caller=self._thread is None)
            self._samples += taken
            self._cycles += 1
            if now >= self._sealer.seal_at:
                self._seal(now)
        if self._sealer.sinks.pending:
            self._sealer.sinks.deliver()
        return taken

    def _housekeeping(self, unknown_cpu: bool) -> None:
        """Seal the window and look for new threads when due, between instants."""
        now = self._clock()
        with self._lock:
            if now >= self._threads.next_refresh or unknown_cpu or self._threads.changed():
                enabled = gc.isenabled()
                if enabled:
                    gc.disable()
                try:
                    fresh = self._threads.refresh(sys._current_frames())
                finally:
                    if enabled:
                        gc.enable()
                if unknown_cpu and not fresh:  # native threads: stop asking for a while
                    self._unknown_quiet_until = now + UNKNOWN_QUIET_NS
            if now >= self._sealer.seal_at:
                self._seal(now)
        if self._sealer.sinks.pending:
            self._sealer.sinks.deliver()

    def _seal(self, now: int) -> None:
        """Seal the open window (the caller holds the lock; the sinks get it after)."""
        self._truncated += self._sealer.seal(now, self._collector.take(), self._health())

    def _health(self) -> dict[str, Any]:
        """What a sealed window records of the sampler (``Window.sampler_stats``)."""
        elapsed = max(self._clock() - self._started_ns, 1)
        return {"overhead_ratio": self._own_cpu_ns / elapsed,
                "interval": self._interval_ns / 1e9,
                "rate": self._waker.wakes / elapsed * 1e9,
                "errors": self._errors}

    # -- reading ------------------------------------------------------------------
    def windows(self) -> list[Window]:
        """The sealed windows still held (oldest first)."""
        with self._lock:
            return list(self._sealer.history)

    def profile(self) -> Profile:
        """Everything held: the sealed windows merged with the open one."""
        with self._lock:
            windows = list(self._sealer.history)
            current = self._sealer.open_profile(self._clock(), self._collector.snapshot())
        return merge([w.profile() for w in windows] + [current])

    def summary(self) -> WindowSummary:
        """The request summaries and GC pauses of the windows held and the open one."""
        with self._lock:
            return self._sealer.summary()

    def stats(self) -> dict[str, Any]:
        """Health of the sampler: counters, interval and measured overhead."""
        elapsed = max(self._clock() - self._started_ns, 1)
        process_cpu = max(time.process_time_ns() - self._started_cpu, 1)
        return {
            "running": self.running,
            "implementation": self.implementation,
            "mode": self.config.mode,
            "samples": self._samples,
            "cycles": self._cycles,
            "errors": self._errors,
            "interval": self._interval_ns / 1e9,
            "rate": self._waker.wakes / elapsed * 1e9,
            "cycle_cost": self._cost_ns / 1e9,
            "sampler_cpu": self._own_cpu_ns / 1e9,
            "overhead_ratio": self._own_cpu_ns / elapsed,
            "process_cpu_share": self._own_cpu_ns / process_cpu,
            "truncated": self._truncated + self._collector.truncated,
            "unattributed_cpu": self._collector.unattributed / 1e9,
            "wakes": self._waker.wakes,
            "idle_wakes": self._waker.idle_wakes,
            "truthful": self.truthful,
            "gil_wait": self._gil_wait_ns / 1e9,
            "gil_queue": self._waker.queued,
            "threads": len(self._collector.thread_idents()),
            "windows": len(self._sealer.history),
            "history_bytes": self._sealer.history.nbytes,
            "sink_errors": self._sealer.sinks.errors,
            "native_id": self._native_id,
        }

    # -- process events -----------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        was_running = self._thread is not None and not self._stopping
        self._thread = None
        self._reset_state()
        if was_running:
            self.start()


def _after_fork_in_child() -> None:
    for sampler in list(_live_samplers):
        try:
            sampler._after_fork_in_child()
        except Exception:
            log.exception("ember: could not restart the sampler after fork")


def _stop_all_at_exit() -> None:
    for sampler in list(_live_samplers):
        if sampler.running:
            thread = sampler._thread
            sampler._request_stop()
            if thread is not None:
                thread.join(timeout=1.0)
            if len(sampler._sealer.sinks):  # the last window reaches the sinks
                sampler._finish(timeout=1.0)  # (a thread still stopping takes no sample)


def running_samplers() -> Iterable[Sampler]:
    return [s for s in list(_live_samplers) if s.running]


_process.after_fork(_after_fork_in_child)
_process.at_exit(_stop_all_at_exit)
