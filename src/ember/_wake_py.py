"""Pure-Python twin of ``ext/_wake.pyx``: the instants at which the sampler samples.

A :class:`Waker` sleeps to each sampling instant (absolute deadlines, each a
randomised interval after the last: uniform in [0.5, 1.5) times the mean, from
a seeded splitmix64 both twins share) and observes, at the instant, which of
the watched threads are on CPU. The sampler then samples only those, each
weighted by the period since the previous instant; the collector calibrates
the weights so that each thread's total is the CPU its clock measured.

Rules shared by both twins (``observe()`` applies them to given readings,
so tests feed both the same):
- a watched thread has a slot; its CPU clock is read at each instant. A
  thread is *active* if its clock moved since the last look; with two passes
  (the compiled waker, at the wake instant) it is *on CPU* if its clock also
  moved between the two back-to-back reads, or if it stood still because the
  waker's own wake-up preempted it (on a busy machine; ``runnable`` in
  ``observe()``); with one pass (this twin, and any reading taken while
  holding the GIL) an active thread counts as on CPU;
- ``windows()`` sums each slot's clock movement: the thread's exact CPU;
- slots added with ``sampled=False`` (ember's own threads) are counted, never
  on CPU;
- when the process used less than ``QUIET_NS`` of CPU beside the sampler since
  the last instant, no clock is read and nobody is on CPU;
- a first reading (or a slot whose clock could not be read when added) is a
  baseline only; a reading of -1 means the thread is gone (counted in ``gone``);
- ``unknown_ns`` is what the process used beside the sampler and the watched
  threads since the last instant (threads not registered yet);
- ``period_ns`` is the time since the previous instant.

What this twin cannot do: wait without the GIL. It waits on a lock with a
timeout and observes once it holds the GIL again, that is, at the moment the
thread that held it let go (usually at an I/O call, or after the 5 ms switch
interval), and it cannot end an idle instant without the GIL. The compiled
twin can; see its docstring.
"""

from __future__ import annotations

import contextlib
import threading
import time

WAKE = 1
"""``wait()``: an instant with a thread on CPU (cpu mode) or any instant (wall
mode); the caller holds the GIL and samples."""
DUE = 2
"""``wait()``: ``until_ns`` came, or threads ember does not know used CPU:
time for the caller's housekeeping (seal a window, look for new threads)."""
STOPPED = 3
"""``wait()``: ``stop()`` was called."""
QUIET_NS = 2000
"""CPU (ns) the process may use beside the sampler between two instants and
still count as quiet: nobody's clock is read then."""
SWITCH_US = 20
"""The switch interval (µs) while the compiled twin takes the GIL."""
PREEMPTED_NS = 100_000
"""A thread whose clock stood still at the instant, but that the scheduler took
off the CPU at most this long (ns) before the compiled waker ran, was preempted
by it."""


_MASK = (1 << 64) - 1


def fast_gil_available() -> bool:
    """Whether this build can lower the switch interval without the GIL: never here."""
    return False


def switch_interval_us() -> int:
    """The interpreter's switch interval in µs as ember reads it (0 where it cannot)."""
    return 0


def lower_switch_interval(us: int) -> None:
    """Lower the switch interval as the compiled waker does (nothing here)."""


def restore_switch_interval() -> None:
    """Undo one ``lower_switch_interval()`` (nothing here)."""


def after_fork_in_child() -> None:
    """Reset the process-wide switch-interval state in a fork child (none here)."""



def _cpu_ns(clock: int) -> int:
    try:
        return time.clock_gettime_ns(clock)
    except OSError:
        return -1


class _Slot:
    __slots__ = ("clock", "first", "look", "on_cpu", "sampled", "used", "window")

    def __init__(self) -> None:
        self.clock = 0
        self.look = -1
        self.window = 0
        self.first = -1
        self.used = False
        self.sampled = True
        self.on_cpu = False


class Waker:
    """Waits for each sampling instant and observes which threads are on CPU then."""

    def __init__(self, seed: int = 0, fast_gil: bool = True, switch_us: int = SWITCH_US) -> None:
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()  # held while running; stop() releases it
        self._lock.acquire()
        self._stopped = False
        self._rng = seed & _MASK
        self.fast_gil = False
        self.switch_us = switch_us
        self.deadline = 0
        self.wake_ns = 0
        self.period_ns = 0
        self.wakes = 0
        self.idle_wakes = 0
        self.on_cpu = 0
        self.gone = 0
        self.unknown_ns = 0
        self.gil_wait_ns = 0
        self.gil_cpu_ns = 0
        self.queued = 0
        self._last_wake = 0
        self._proc_last = -1
        self._own_last = -1

    # -- threads ------------------------------------------------------------------
    def add(self, native_id: int, sampled: bool = True) -> int:
        """Watch a thread's CPU clock from now on; returns its slot."""
        slots = self._slots
        slot = 0
        while slot < len(slots) and slots[slot].used:
            slot += 1
        if slot == len(slots):
            slots.append(_Slot())
        entry = slots[slot]
        entry.clock = ((~native_id) << 3) | 6
        entry.look = _cpu_ns(entry.clock)
        entry.window = 0
        entry.first = -1
        entry.used = True
        entry.sampled = sampled
        entry.on_cpu = False
        return slot

    def remove(self, slot: int) -> int:
        """Stop watching a slot; returns the CPU it used since the windows were taken."""
        slots = self._slots
        window = 0
        if 0 <= slot < len(slots) and slots[slot].used:
            window = slots[slot].window
            slots[slot].used = False
            slots[slot].on_cpu = False
            while slots and not slots[-1].used:
                slots.pop()
        return window

    def windows(self) -> list[int]:
        """Per slot, the CPU (ns) used since the windows were last taken (0: unused)."""
        return [s.window if s.used else 0 for s in self._slots]

    def take_windows(self) -> list[int]:
        """Like windows(), and start counting afresh."""
        out = self.windows()
        for s in self._slots:
            s.window = 0
        return out

    def on_cpu_mask(self) -> bytes:
        """One byte per slot: 1 if the thread was on CPU at the last instant."""
        return bytes(1 if s.on_cpu else 0 for s in self._slots)

    # -- instants -----------------------------------------------------------------
    def begin(self, now_ns: int, interval_ns: int) -> None:
        """Start at ``now_ns``: periods count from there, the first instant is
        one randomised interval later."""
        self._last_wake = now_ns
        self.deadline = now_ns + self._step(interval_ns)
        self._proc_last = -1
        self._own_last = -1

    def _next(self) -> int:
        self._rng = (self._rng + 0x9E3779B97F4A7C15) & _MASK
        z = self._rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def uniform(self) -> float:
        """The next factor in [0.5, 1.5) of the randomised interval."""
        return 0.5 + (self._next() >> 11) * (1.0 / 9007199254740992.0)

    def _step(self, interval_ns: int) -> int:
        return int(interval_ns * self.uniform())

    def advance(self, interval_ns: int, now_ns: int) -> int:
        """Move the deadline one randomised interval on (a fresh start when far
        behind ``now_ns``); returns it."""
        self.deadline += self._step(interval_ns)
        if self.deadline < now_ns - interval_ns:  # far behind (a long pause): no burst
            self.deadline = now_ns
        return self.deadline

    def observe(self, now_ns: int, first: list[int] | None = None,
                second: list[int] | None = None, other_ns: int = -1,
                cpu_mode: bool = True, runnable: list[bool] | None = None) -> int:
        """Apply one instant's readings (the clocks are read by the caller).

        ``first``/``second``: per-slot readings of the two passes (None: not
        read, i.e. nothing moved; ``second`` None: one pass, a thread is on
        CPU if its clock moved since the last look). ``runnable``: per slot,
        whether a thread whose clock stood still between the passes was
        runnable (preempted), which counts as on CPU. ``other_ns``: CPU the
        process used beside the sampler since the last instant (-1: unknown).
        Returns the number of threads on CPU.
        """
        slots = self._slots
        if first is not None:
            for i, s in enumerate(slots):
                if s.used:
                    s.first = first[i]
        if second is not None:
            for i, s in enumerate(slots):
                if s.used and s.first > s.look >= 0:
                    s.on_cpu = second[i] > s.first
                    if s.on_cpu:
                        s.first = second[i]
                    elif runnable is not None and s.sampled:
                        s.on_cpu = bool(runnable[i])
        self._apply(now_ns, first is not None, second is not None, other_ns, cpu_mode)
        return self.on_cpu

    def observe_now(self, now_ns: int, cpu_mode: bool = True) -> int:
        """Read every clock now (one pass; the caller holds the GIL) and observe."""
        other = -1
        read = True
        if cpu_mode:
            own = time.thread_time_ns()
            proc = time.process_time_ns()
            if self._proc_last >= 0:
                other = (proc - self._proc_last) - (own - self._own_last)
            self._proc_last, self._own_last = proc, own
            read = not (0 <= other < QUIET_NS)
            if read:
                for s in self._slots:
                    if s.used:
                        s.first = _cpu_ns(s.clock)
        self._apply(now_ns, read and cpu_mode, False, other, cpu_mode)
        return self.on_cpu

    def _apply(self, now_ns: int, have_first: bool, instant: bool, other_ns: int,
               cpu_mode: bool) -> None:
        """The decisions of one instant, shared by every way of reading it."""
        known = on = gone = 0
        self.wakes += 1
        self.period_ns = now_ns - self._last_wake if self._last_wake else 0
        self._last_wake = now_ns
        self.wake_ns = now_ns
        for s in self._slots:
            if not s.used:
                continue
            if not cpu_mode or not have_first:
                s.on_cpu = False
                continue
            reading = s.first
            if reading < 0:  # the thread is gone
                s.on_cpu = False
                gone += 1
                continue
            if s.look < 0:  # first reading: a baseline only
                s.look = reading
                s.on_cpu = False
                continue
            if reading > s.look:
                known += reading - s.look
                s.window += reading - s.look
                s.look = reading
                if not instant:
                    s.on_cpu = True
            else:
                s.on_cpu = False
            if not s.sampled:
                s.on_cpu = False
            elif s.on_cpu:
                on += 1
        self.on_cpu = on
        self.gone = gone
        self.unknown_ns = other_ns - known if other_ns >= 0 and have_first else 0

    def wait(self, interval_ns: int, until_ns: int, cpu_mode: bool = True,
             unknown_limit_ns: int = 0) -> int:
        """Sleep to the next instant and observe it; see WAKE, DUE and STOPPED.

        Instants without a thread on CPU (cpu mode) are counted in
        ``idle_wakes`` and waited past. ``unknown_limit_ns`` > 0: return DUE
        when threads ember does not watch used more CPU than that since an
        instant.
        """
        while True:
            now = time.monotonic_ns()
            if self.deadline < now - interval_ns:
                self.deadline = now
            target = min(self.deadline, until_ns)
            if self._stopped or self._lock.acquire(True, max(target - now, 0) / 1e9):
                self._stopped = True
                return STOPPED
            if target < self.deadline:
                return DUE
            now = time.monotonic_ns()
            self.observe_now(now, cpu_mode)
            self.advance(interval_ns, now)
            if not cpu_mode or self.on_cpu > 0:
                return WAKE
            if unknown_limit_ns > 0 and self.unknown_ns > unknown_limit_ns:
                return DUE
            self.idle_wakes += 1

    def stop(self) -> None:
        """Wake a waiting ``wait()`` now; every later one returns STOPPED."""
        self._stopped = True
        if self._lock.locked():
            with contextlib.suppress(RuntimeError):  # released concurrently
                self._lock.release()

    @property
    def stopped(self) -> bool:
        return self._stopped
