"""A sealed window (what the sampler collected between two seal times), the
:class:`WindowSink` protocol through which sealed windows leave the sampler,
a window's size in memory, and the history of windows a sampler keeps within
a budget.

Sizes are estimated from the tables' shapes, not measured object by object
(that would cost the sampler a walk over every stack at every seal): the
containers' own sizes (``sys.getsizeof``), plus per frame, per stack, per
frame of a stack and per value row the bytes CPython allocates for them,
rounded up as its small-object allocator rounds. Strings are not counted:
the frames share them with the code objects. tests/unit/test_history_budget.py
checks the estimate against tracemalloc (it is 0-25% above what tracemalloc
counts; the rounding is real memory that tracemalloc does not show);
benchmarks/history_memory.py prints both, and the process's RSS.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any, Protocol

from ember.profile import Labels, Metadata, Profile
from ember.summary import WindowSummary
from ember.summary import estimate_bytes as summary_bytes

Frame = tuple[str, str, int]
Values = dict[tuple[int, Labels], list[int]]

TRUNCATED: Frame = ("[truncated]", "", 0)
"""The frame of the one stack that holds the samples of stacks left out."""


def _allocated(size: int) -> int:
    """Bytes an object of ``size`` bytes takes: pymalloc rounds to 16 up to 512
    bytes, and malloc adds its header beyond."""
    return (size + 15) // 16 * 16 if size <= 512 else (size + 8 + 15) // 16 * 16


INT_BYTES = _allocated(sys.getsizeof(1 << 40))
"""An int that is not one of the cached small ones (-5..256)."""
FRAME_BYTES = _allocated(sys.getsizeof(("", "", 0)))
"""A frame row: the 3-tuple (its strings are the code object's)."""
FRAME_INTS = 2
"""Ints a frame past the 257th brings: its line and its id."""
STACK_BYTES = sys.getsizeof(()) + 12
"""A stack tuple without its items (the rounding averaged in)."""
ENTRY_BYTES = 8
"""A frame id in a stack tuple (the pointer; the int is shared or counted apart)."""
VALUE_BYTES = (_allocated(sys.getsizeof((0, ()))) + INT_BYTES          # (stack id, labels)
               + _allocated(sys.getsizeof([])) + _allocated(3 * 8)      # [samples, cpu, wall]
               + 2 * INT_BYTES)                                         # cpu_ns, wall_ns
"""A value row: its key, its list and their ints (the dict's table is counted apart)."""
WINDOW_BYTES = 2048
"""A window's metadata and the objects around its tables."""
_SAMPLED_STACKS = 256
"""Stacks looked at to tell how many frame ids are ints of their own."""


def estimate_bytes(frames: list[Frame], stacks: list[tuple[int, ...]], values: Values, *,
                   fresh_ids: bool) -> int:
    """Bytes the tables of a window hold (see the module docstring).

    ``fresh_ids``: each frame id in each stack is an int object of its own (the
    compiled collector builds stack tuples from C integers); else a frame's id
    is one int that every stack shares (the pure-Python twin). Ids up to 256
    are CPython's cached ints either way.
    """
    size = WINDOW_BYTES + sys.getsizeof(frames) + sys.getsizeof(stacks) + sys.getsizeof(values)
    size += len(frames) * FRAME_BYTES + max(len(frames) - 257, 0) * FRAME_INTS * INT_BYTES
    entries = sum(map(len, stacks))
    size += len(stacks) * STACK_BYTES + entries * ENTRY_BYTES
    if fresh_ids and len(frames) > 257 and entries:
        sample = stacks[::max(1, len(stacks) // _SAMPLED_STACKS)]
        seen = sum(map(len, sample))
        large = sum(1 for stack in sample for fid in stack if fid > 256)
        size += entries * large * INT_BYTES // max(seen, 1)
    size += len(values) * VALUE_BYTES
    return size


@dataclasses.dataclass
class Window:
    """One sealed window: the raw tables of its samples (converted to a Profile
    only when read), its metadata, and the summaries of the requests that
    finished in it.

    Sinks share the window with the sampler's history: they read it, never change it.
    """

    meta: Metadata
    frames: list[Frame]
    stacks: list[tuple[int, ...]]
    values: Values
    nbytes: int = 0
    """The estimated bytes the window holds (:func:`estimate_bytes`; 0: not estimated)."""
    summary: WindowSummary = dataclasses.field(default_factory=WindowSummary)
    """Per endpoint, the requests that finished in the window; its GC pauses."""
    sampler_stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The sampler's health when it sealed the window: ``overhead_ratio``,
    ``interval``, ``rate``, ``errors`` (as in ``Sampler.stats()``)."""

    @property
    def start(self) -> float:
        """Unix time the window opened."""
        return self.meta.start

    @property
    def end(self) -> float:
        """Unix time the window was sealed."""
        return self.meta.start + self.meta.duration

    @property
    def pid(self) -> int:
        """The process that sampled it (``ember._process.pid()`` at sealing)."""
        return self.meta.pids[0] if self.meta.pids else 0

    def profile(self) -> Profile:
        return Profile.from_tables(self.frames, self.stacks, self.values,
                                   dataclasses.replace(self.meta))


class WindowSink(Protocol):
    """Where sealed windows leave a sampler (``Sampler(sinks=...)``, ``add_sink``).

    The sampler calls :meth:`window_sealed` once per sealed window, in the order
    of sealing, outside its lock, on the thread that sealed it (the sampling
    thread, or the one that called ``stop()``), and :meth:`flush` once it
    stopped, after the last window. A sink returns at once: one that does I/O
    hands the window to a thread of its own (:class:`ember.sinks.ThreadedSink`).
    An exception is counted (``stats()["sink_errors"]``) and logged once per
    sink; the sampler and the other sinks go on.
    """

    def window_sealed(self, window: Window) -> None:
        """Take ``window`` (read-only; the history holds it too) and return."""

    def flush(self) -> None:
        """The sampler stopped: finish what it handed over (briefly; it may start
        again and send more)."""


def trim(window: Window, max_bytes: int) -> int:
    """Make ``window`` fit in ``max_bytes``: keep its heaviest stacks (most
    samples), and count the samples of the others into one ``[truncated]``
    stack per label set, as the collector does when its table is full.
    Returns the samples moved; the window's ``meta.truncated`` counts them."""
    weight: dict[int, int] = collections.Counter()
    rows: dict[int, int] = collections.Counter()
    for (sid, _labels), row in window.values.items():
        weight[sid] += row[0]
        rows[sid] += 1
    order = sorted(weight, key=lambda sid: (-weight[sid], sid))
    # What the trimmed window holds besides its stacks and rows (at most these frames).
    fixed = estimate_bytes(window.frames, [()], {}, fresh_ids=False) + INT_BYTES
    target, moved = max_bytes, 0
    while True:
        budget, count = target - fixed, 0
        for sid in order:
            # the stack, its slot in the list, its rows and their share of the dict's table
            budget -= (STACK_BYTES + 8 + ENTRY_BYTES * len(window.stacks[sid])
                       + rows[sid] * (VALUE_BYTES + 64))
            if budget < 0:
                break
            count += 1
        frames, stacks, values, moved = _keep(window, order[:count])
        nbytes = estimate_bytes(frames, stacks, values, fresh_ids=False)
        if nbytes <= max_bytes or count == 0:
            break
        target -= nbytes - max_bytes  # the tables' growth was underestimated: again, tighter
    window.frames, window.stacks, window.values, window.nbytes = frames, stacks, values, nbytes
    window.meta.truncated += moved
    return moved


def _keep(window: Window, kept: list[int]) -> tuple[list[Frame], list[tuple[int, ...]],
                                                    Values, int]:
    """The tables of ``window`` with only the stacks ``kept`` (and the frames they
    use, renumbered in their old order), the rest in ``[truncated]``; and the
    samples moved there."""
    old_sids = sorted(kept)
    used = sorted({fid for sid in old_sids for fid in window.stacks[sid]})
    new_fid = {old: new for new, old in enumerate(used)}
    frames = [window.frames[old] for old in used]
    new_sid = {old: new for new, old in enumerate(old_sids)}
    stacks = [tuple(new_fid[f] for f in window.stacks[old]) for old in old_sids]
    added = TRUNCATED not in frames
    if added:
        frames.append(TRUNCATED)
    truncated_stack = (frames.index(TRUNCATED),)
    truncated_sid = stacks.index(truncated_stack) if truncated_stack in stacks else -1
    values: Values = {}
    moved = 0
    for (sid, labels), row in window.values.items():
        if sid in new_sid:
            key = (new_sid[sid], labels)
        else:
            if truncated_sid < 0:
                truncated_sid = len(stacks)
                stacks.append(truncated_stack)
            key = (truncated_sid, labels)
            moved += row[0]
        into = values.get(key)
        if into is None:
            values[key] = list(row)
        else:
            for i in range(3):
                into[i] += row[i]
    if added and truncated_sid < 0:  # nothing left out after all
        frames.pop()
    return frames, stacks, values, moved


class History:
    """The sealed windows a sampler keeps, oldest first: at most ``max_windows``
    and at most ``max_bytes`` of them by their estimates; the oldest leave
    first, and a window estimated above ``max_bytes`` alone is trimmed first
    (:func:`trim`)."""

    def __init__(self, max_windows: int, max_bytes: int, *, fresh_ids: bool) -> None:
        self.max_windows = max_windows
        self.max_bytes = max_bytes
        self.fresh_ids = fresh_ids
        self.nbytes = 0
        """Estimated bytes of the windows held."""
        self.dropped = 0
        """Windows dropped to stay within ``max_bytes`` (not counting ``max_windows``)."""
        self._windows: collections.deque[Window] = collections.deque()

    def append(self, window: Window) -> int:
        """Keep ``window`` (estimating it), dropping the oldest beyond the limits.
        Returns the samples that trimming moved into ``[truncated]``."""
        extra = summary_bytes(window.summary)
        window.nbytes = estimate_bytes(window.frames, window.stacks, window.values,
                                       fresh_ids=self.fresh_ids) + extra
        moved = 0
        if window.nbytes > self.max_bytes:
            moved = trim(window, max(self.max_bytes - extra, 0))
            window.nbytes += extra
        self._windows.append(window)
        self.nbytes += window.nbytes
        while len(self._windows) > self.max_windows:
            self.nbytes -= self._windows.popleft().nbytes
        while self.nbytes > self.max_bytes and len(self._windows) > 1:
            self.nbytes -= self._windows.popleft().nbytes
            self.dropped += 1
        return moved

    def __iter__(self) -> Iterator[Window]:
        return iter(self._windows)

    def __len__(self) -> int:
        return len(self._windows)
