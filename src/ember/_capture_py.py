"""Pure-Python twin of ``ext/_capture.pyx``: per-sample work of the sampler.

The :class:`Collector` turns the frames of the sampled threads into interned
stacks and sums ``[samples, cpu_ns, wall_ns]`` per ``(stack id, labels)``. Both
implementations must produce identical tables for identical inputs: same
frame and stack ids in the same order, same values, same counters.

Rules shared by both twins:
- frames are interned by value ``(qualname, filename, line)`` where ``line`` is
  the code's first line, or the executing line when ``lines`` is on;
- a stack is walked leaf to root and interned root first; a stack deeper than
  ``max_depth`` keeps its ``max_depth - 1`` leaf-most frames under one
  ``[deep]`` root frame, frames interned leaf to root, ``[deep]`` last;
- when ``max_stacks`` distinct stacks exist, new stacks count into one
  ``[truncated]`` stack (``truncated`` counts those samples);
- in cpu mode a thread is sampled only if the waker (``ember._wake_py``) saw it
  on CPU at this instant, and the sample weighs the waker's ``period_ns``; in
  wall mode every thread is sampled and ``cpu_ns`` stays 0;
- ``cpu_ns`` is calibrated per thread and window: when the window is taken
  (or a thread dropped), the CPU its clock measured in the window is shared
  among the rows it was sampled in, in proportion to their period weights,
  rounded cumulatively (:func:`distribute`) so the parts add up exactly. A
  thread never sampled in a window carries that CPU into the next window; CPU
  still unsampled after that is counted in ``unattributed``;
- ``snapshot()`` shows the CPU calibrated as if the window were taken now;
- ``wall_ns`` is the time since the thread was last sampled (``cycle_ns``
  on the first time).
"""

from __future__ import annotations

import gc
import sys
import time
from types import CodeType, FrameType
from typing import Any

DEEP = ("[deep]", "", 0)
TRUNCATED = ("[truncated]", "", 0)


def clock_id(native_id: int) -> int:
    """Linux CPU clock of one thread, built from its kernel thread id.

    Unlike ``pthread_getcpuclockid`` this cannot touch freed memory: for a
    thread that has exited, ``clock_gettime`` fails cleanly with EINVAL.
    """
    return ((~native_id) << 3) | 6


def thread_cpu_ns(native_id: int) -> int:
    """CPU time of a thread in nanoseconds, or -1 if the thread is gone."""
    try:
        return time.clock_gettime_ns(clock_id(native_id))
    except OSError:
        return -1


def distribute(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (integers >= 0, not all 0),
    rounding cumulatively so that the parts add up to ``total`` exactly."""
    whole = sum(weights)
    out = []
    acc = given = 0
    for w in weights:
        acc += w
        target = total * acc // whole
        out.append(target - given)
        given = target
    return out


class _Thread:
    __slots__ = ("labels", "last_seen", "native_id", "owed", "shares", "slot")

    def __init__(self, native_id: int, labels: Any, slot: int) -> None:
        self.native_id = native_id
        self.labels = labels
        self.slot = slot  # the waker's slot for its CPU clock, -1: none
        self.last_seen = 0
        self.shares: dict[tuple[int, Any], int] = {}  # row key -> period weight this window
        self.owed = 0  # CPU of a window in which it was never sampled


class Collector:
    """Interns stacks of sampled threads and sums their values per window."""

    def __init__(self, max_stacks: int, max_depth: int, lines: bool = False,
                 waker: Any = None) -> None:
        if max_stacks < 1 or max_depth < 2:
            raise ValueError("max_stacks must be >= 1 and max_depth >= 2")
        self.max_stacks = max_stacks
        self.max_depth = max_depth
        self.lines = lines
        self.waker = waker
        self.unattributed = 0
        self.missing = 0
        self.gone = 0
        self.stopping = False
        self._threads: dict[int, _Thread] = {}
        self._active: dict[int, Any] | None = None
        self._active_seen: dict[int, Any] = {}
        self._cpu_mode = False
        self._max_threads = 0
        self._pending: dict[int, FrameType] | None = None
        self._reset()

    def _reset(self) -> None:
        for thread in self._threads.values():
            thread.shares = {}
        self.frames: list[tuple[str, str, int]] = []
        self.stacks: list[tuple[int, ...]] = []
        self._rows: dict[tuple[int, Any], list[int]] = {}
        self.truncated = 0
        self._frame_ids: dict[tuple[str, str, int], int] = {}
        self._code_frames: dict[Any, int] = {}
        self._stack_ids: dict[tuple[Any, ...], int] = {}
        self._codes: list[CodeType] = []
        self._truncated_sid = -1

    # -- threads ------------------------------------------------------------------
    def set_thread(self, ident: int, native_id: int, labels: Any) -> None:
        """Register a thread (or update its labels, keeping its clock baselines).

        ``labels=None`` registers a thread that is never sampled.
        """
        thread = self._threads.get(ident)
        if thread is None or thread.native_id != native_id:
            if thread is not None:
                self.drop_thread(ident)
            slot = -1
            if self.waker is not None and native_id > 0:
                slot = self.waker.add(native_id, labels is not None)
            self._threads[ident] = _Thread(native_id, labels, slot)
        else:
            thread.labels = labels

    def drop_thread(self, ident: int) -> None:
        """Forget a thread; its CPU of this window goes to the rows it was sampled in."""
        thread = self._threads.pop(ident, None)
        if thread is None or thread.slot < 0:
            return
        self._settle(thread, self.waker.remove(thread.slot))
        self.unattributed += thread.owed
        thread.owed = 0

    def thread_idents(self) -> list[int]:
        return list(self._threads)

    def on_cpu_idents(self) -> list[int]:
        """The sampled threads the waker saw on CPU at the last instant."""
        if self.waker is None:
            return []
        on = self.waker.on_cpu_mask()
        return [ident for ident, thread in self._threads.items()
                if thread.labels is not None and 0 <= thread.slot < len(on) and on[thread.slot]]

    def watch(self, active: dict[int, Any], cpu_mode: bool, max_threads: int) -> None:
        """Settings of :meth:`cycle`, and a snapshot of ``active`` (threading's
        registry of live threads) taken when the threads were last registered."""
        self._active = active
        self._active_seen = dict(active)
        self._cpu_mode = cpu_mode
        self._max_threads = max_threads

    def take_pending(self) -> dict[int, FrameType] | None:
        """The frames :meth:`cycle` could not sample entirely, once."""
        frames, self._pending = self._pending, None
        return frames

    # -- sampling -----------------------------------------------------------------
    def cycle(self, now_ns: int, cycle_ns: int, skip: int = 0) -> int:
        """A whole sampling cycle over ``sys._current_frames()``, the GC off meanwhile.

        Leaves out thread ``skip`` and takes nothing once ``stopping`` is set.
        Returns -1 without sampling when the caller must register threads first
        or pick among them: :meth:`watch` not called yet, threads started or
        exited since (``active`` differs from its snapshot), or more than
        ``max_threads`` threads. On -1, or when threads were ``missing`` or
        ``gone``, the frames wait in :meth:`take_pending` for the caller.
        """
        enabled = gc.isenabled()
        if enabled:
            gc.disable()
        try:
            frames = sys._current_frames()
            if self.stopping:
                return 0
            if skip:
                frames.pop(skip, None)
            if (self._active is None or len(frames) > self._max_threads
                    or self._active != self._active_seen):
                self._pending = frames
                return -1
            taken = self.collect(frames, now_ns, cycle_ns, self._cpu_mode)
            if self.missing or self.gone:
                self._pending = frames
            return taken
        finally:
            if enabled:
                gc.enable()

    def collect(
        self, frames: dict[int, FrameType], now_ns: int, cycle_ns: int, cpu_mode: bool
    ) -> int:
        """Sample each thread in ``frames``; return the number of samples taken.

        Threads not registered with :meth:`set_thread` are skipped and counted
        in ``missing``; registered threads whose CPU clock cannot be read (the
        thread is gone, or its ident was recycled) are counted in ``gone``.
        """
        taken = 0
        missing = 0
        gone = 0
        threads = self._threads
        on_cpu = b""
        period = 0
        if cpu_mode:
            if self.waker is None:
                raise ValueError("cpu mode needs a waker")
            on_cpu = self.waker.on_cpu_mask()
            period = self.waker.period_ns
            gone = self.waker.gone
        for ident, frame in frames.items():
            thread = threads.get(ident)
            if thread is None:
                missing += 1
                continue
            if thread.labels is None:  # registered as never sampled (a sampler thread)
                continue
            if cpu_mode and not (0 <= thread.slot < len(on_cpu) and on_cpu[thread.slot]):
                continue
            wall = now_ns - thread.last_seen if thread.last_seen else cycle_ns
            thread.last_seen = now_ns
            key = (self._stack_id(frame), thread.labels)
            values = self._rows.get(key)
            if values is None:
                self._rows[key] = [1, 0, wall]
            else:
                values[0] += 1
                values[2] += wall
            if cpu_mode:
                thread.shares[key] = thread.shares.get(key, 0) + period
            taken += 1
        self.missing = missing
        self.gone = gone
        return taken

    def _stack_id(self, frame: FrameType) -> int:
        entries: list[Any] = []
        f: FrameType | None = frame
        depth = 0
        limit = self.max_depth
        if self.lines:
            while f is not None and depth < limit:
                entries.append((f.f_code, f.f_lineno or 0))
                f = f.f_back
                depth += 1
        else:
            while f is not None and depth < limit:
                entries.append(f.f_code)
                f = f.f_back
                depth += 1
        deep = f is not None
        if deep:
            entries.pop()
        key: tuple[Any, ...]
        if self.lines:
            key = (*((id(c), ln) for c, ln in entries), deep)
        else:
            key = (*map(id, entries), deep)
        sid = self._stack_ids.get(key)
        if sid is not None:
            return sid
        if len(self.stacks) >= self.max_stacks:
            self.truncated += 1
            if self._truncated_sid < 0:
                self._truncated_sid = self._new_stack((self._intern(TRUNCATED),))
            return self._truncated_sid
        ids = [self._frame_of(e) for e in entries]
        if deep:
            ids.append(self._intern(DEEP))
        sid = self._new_stack(tuple(reversed(ids)))
        self._stack_ids[key] = sid
        return sid

    def _new_stack(self, stack: tuple[int, ...]) -> int:
        self.stacks.append(stack)
        return len(self.stacks) - 1

    def _frame_of(self, entry: Any) -> int:
        code, line = entry if self.lines else (entry, None)
        ckey = (id(code), line)
        fid = self._code_frames.get(ckey)
        if fid is None:
            self._codes.append(code)  # keeps id(code) unique while the key exists
            fid = self._intern((code.co_qualname, code.co_filename,
                                code.co_firstlineno if line is None else line))
            self._code_frames[ckey] = fid
        return fid

    def _intern(self, frame: tuple[str, str, int]) -> int:
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = self._frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return fid

    # -- windows ------------------------------------------------------------------
    def _settle(self, thread: _Thread, window: int) -> None:
        """Give the thread's exact CPU of the window (and what it owed) to the rows
        it was sampled in, in proportion to their period weights."""
        weights = list(thread.shares.values())
        if sum(weights) > 0:
            for key, part in zip(thread.shares, distribute(window + thread.owed, weights),
                                 strict=True):
                self._rows[key][1] += part
            thread.owed = 0
        else:  # never sampled this window: the CPU waits one window for a sample
            self.unattributed += thread.owed
            thread.owed = window
        thread.shares = {}

    def _pending_cpu(self, windows: list[int]) -> dict[tuple[int, Any], int]:
        """Per row, the CPU that settling the threads now would add (no change made)."""
        extra: dict[tuple[int, Any], int] = {}
        for thread in self._threads.values():
            weights = list(thread.shares.values())
            if thread.slot < 0 or sum(weights) <= 0:
                continue
            window = windows[thread.slot] if thread.slot < len(windows) else 0
            for key, part in zip(thread.shares, distribute(window + thread.owed, weights),
                                 strict=True):
                extra[key] = extra.get(key, 0) + part
        return extra

    @property
    def values(self) -> dict[tuple[int, Any], list[int]]:
        """(stack id, labels) -> [samples, cpu_ns, wall_ns] collected so far (a copy),
        CPU calibrated as if the window were sealed now."""
        extra = self._pending_cpu(self.waker.windows() if self.waker is not None else [])
        return {k: [v[0], v[1] + extra.get(k, 0), v[2]] for k, v in self._rows.items()}

    def snapshot(self) -> tuple[list[tuple[str, str, int]], list[tuple[int, ...]],
                                dict[tuple[int, Any], list[int]], int]:
        """Copies of the tables collected so far (CPU calibrated as of now)."""
        return (list(self.frames), list(self.stacks), self.values, self.truncated)

    def take(self) -> tuple[list[tuple[str, str, int]], list[tuple[int, ...]],
                            dict[tuple[int, Any], list[int]], int]:
        """The tables collected so far, each thread's CPU calibrated to what its
        clock measured in the window; the collector starts a new window."""
        if self.waker is not None:
            windows = self.waker.take_windows()
            for thread in self._threads.values():
                if thread.slot >= 0:
                    self._settle(thread, windows[thread.slot] if thread.slot < len(windows)
                                 else 0)
        out = (self.frames, self.stacks, self._rows, self.truncated)
        self._reset()
        return out
