"""Sealing: a sampler's tables become a :class:`~ember.window.Window`, with its
metadata (start, duration, pid, host, service, version), its garbage-collector
pauses and the summaries of the requests that finished while it was open;
the window is kept in the sampler's history and queued for its sinks.

A :class:`Sealer` belongs to one sampler, which calls it with its lock held
(the sinks are called later, without the lock: ``Sinks.deliver``). The
requests reach it through its ``requests``, a
:class:`~ember.summary.RequestRecorder` that the sampler registers among the
middleware's observers while it runs. A window with neither samples, nor
requests, nor collections is not kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from ember import _process
from ember.config import Config
from ember.gcstats import GcMonitor, as_seconds
from ember.profile import Metadata, Profile
from ember.sinks import Sinks
from ember.summary import RequestRecorder, WindowSummary, merge
from ember.window import History, Values, Window, WindowSink

Tables = tuple[list[Any], list[tuple[int, ...]], Values, int]
"""What a collector's ``take()`` and ``snapshot()`` return: frames, stacks,
values and the samples it folded into ``[truncated]``."""


class Sealer:
    """The windows of one sampler: the open one's start, the sealed ones held,
    the requests recorded, the sinks; see the module docstring."""

    def __init__(self, config: Config, *, fresh_ids: bool, clock: Callable[[], int],
                 sinks: Iterable[WindowSink] = ()) -> None:
        self.config = config
        self.fresh_ids = fresh_ids
        self._clock = clock
        self.sinks = Sinks(sinks)
        self.requests = RequestRecorder()
        self.gc = GcMonitor()
        self.begin(clock())

    def begin(self, now: int) -> None:
        """A new run (a start, a fork child): nothing held, a window opens at ``now``."""
        cfg = self.config
        self.history = History(cfg.max_windows, cfg.max_history_bytes, fresh_ids=self.fresh_ids)
        self.requests.reset()
        self.sinks.reset()
        self.gc.take()
        self._open(now)

    def _open(self, now: int) -> None:
        self.window_start = now
        self.window_start_unix = time.time()
        window = self.config.window
        self.seal_at: float = now + window * 1e9 if window else math.inf

    def seal(self, now: int, tables: Tables, stats: dict[str, Any]) -> int:
        """Seal the open window at ``now`` with the collector's ``tables`` and the
        sampler's ``stats`` (kept as ``Window.sampler_stats``), and open the next.
        Returns the samples folded into ``[truncated]``: by the collector, and by
        the history to keep within its bytes."""
        frames, stacks, values, truncated = tables
        gc_ns = self.gc.take_ns()
        meta = self.metadata(now, truncated, gc_ns)
        summary = WindowSummary(self.requests.take(), gc_ns)
        self._open(now)
        if not values and not summary:
            return truncated
        window = Window(meta, frames, stacks, values, summary=summary, sampler_stats=stats)
        truncated += self.history.append(window)
        self.sinks.put(window)
        return truncated

    def metadata(self, now: int, truncated: int, gc_ns: dict[int, tuple[int, int]]) -> Metadata:
        """The metadata of the window open since ``window_start`` if it ended ``now``."""
        cfg = self.config
        return Metadata(
            start=self.window_start_unix,
            duration=(now - self.window_start) / 1e9,
            period=cfg.interval,
            mode=cfg.mode,
            pids=(_process.pid(),),
            host=cfg.host,
            service=cfg.service,
            version=cfg.version,
            gc=as_seconds(gc_ns),
            truncated=truncated,
        )

    def open_profile(self, now: int, tables: Tables) -> Profile:
        """The open window so far (``tables``: the collector's snapshot), taking nothing."""
        frames, stacks, values, truncated = tables
        return Profile.from_tables(frames, stacks, values,
                                   self.metadata(now, truncated, self.gc.peek_ns()))

    def summary(self) -> WindowSummary:
        """The request summaries and GC pauses of the windows held and the open one."""
        current = WindowSummary(self.requests.peek(), self.gc.peek_ns())
        return merge([*(w.summary for w in self.history), current])
