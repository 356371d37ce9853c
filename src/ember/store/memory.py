"""The in-memory store: this process's windows, oldest first, bounded by their
count and by their estimated bytes (``Window.nbytes``); the oldest leave first.

It is the default store, and where :class:`ember.store.sink.StoreSink` falls
back when a store file cannot be written.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Hashable, Iterable
from typing import TypeVar

from ember.gcstats import as_seconds
from ember.profile import Frame, Metadata, Profile
from ember.store import QueryResult, VersionSeen, WorkerSeen
from ember.summary import WindowSummary, merge
from ember.summary import estimate_bytes as summary_bytes
from ember.window import Window, estimate_bytes

K = TypeVar("K", bound=Hashable)

MAX_WINDOWS = 2160
"""Windows kept at most: six hours of 10 s windows."""
MAX_BYTES = 64 << 20
"""Estimated bytes of the windows kept at most."""


class MemoryStore:
    """A :class:`~ember.store.Store` holding windows in memory (thread-safe)."""

    def __init__(self, max_windows: int = MAX_WINDOWS, max_bytes: int = MAX_BYTES) -> None:
        if max_windows < 1 or max_bytes < 1:
            raise ValueError("a memory store holds at least one window and one byte")
        self.max_windows = max_windows
        self.max_bytes = max_bytes
        self.nbytes = 0
        """Estimated bytes of the windows held."""
        self.dropped = 0
        """Windows dropped, the oldest first, to stay within the bounds."""
        self._lock = threading.Lock()
        self._windows: collections.deque[tuple[Window, int]] = collections.deque()

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self)} windows, {self.nbytes} bytes>"

    def __len__(self) -> int:
        return len(self._windows)

    def write(self, window: Window) -> None:
        size = window.nbytes or (estimate_bytes(window.frames, window.stacks, window.values,
                                                fresh_ids=False) + summary_bytes(window.summary))
        with self._lock:
            self._windows.append((window, size))
            self.nbytes += size
            while len(self._windows) > 1 and (len(self._windows) > self.max_windows
                                              or self.nbytes > self.max_bytes):
                self.nbytes -= self._windows.popleft()[1]
                self.dropped += 1

    def windows(self) -> list[Window]:
        """The windows held, oldest first."""
        with self._lock:
            return [window for window, _ in self._windows]

    def query(self, since: float | None = None, until: float | None = None, *,
              endpoint: str | None = None, version: str | None = None,
              pid: int | None = None, service: str | None = None) -> QueryResult:
        chosen = [w for w in self.windows()
                  if (since is None or w.start >= since) and (until is None or w.start < until)
                  and (version is None or w.meta.version == version)
                  and (service is None or w.meta.service == service)
                  and (pid is None or w.pid == pid)]
        return combine(chosen, endpoint)

    def versions(self) -> list[VersionSeen]:
        seen: dict[tuple[str, str], list[float]] = {}
        for w in self.windows():
            _see(seen, (w.meta.service, w.meta.version), w)
        return sorted((VersionSeen(s, v, a, b, int(n)) for (s, v), (a, b, n) in seen.items()),
                      key=lambda x: (x.first, x.service, x.version))

    def workers(self) -> list[WorkerSeen]:
        seen: dict[tuple[str, int], list[float]] = {}
        for w in self.windows():
            _see(seen, (w.meta.host, w.pid), w)
        return sorted((WorkerSeen(h, p, a, b, int(n)) for (h, p), (a, b, n) in seen.items()),
                      key=lambda x: (x.first, x.host, x.pid))

    def close(self) -> None:
        with self._lock:
            self._windows.clear()
            self.nbytes = 0


def _see(seen: dict[K, list[float]], key: K, window: Window) -> None:
    """Count ``window`` into the span seen of ``key``: [first, last, windows]."""
    span = seen.get(key)
    if span is None:
        seen[key] = [window.start, window.end, 1]
    else:
        span[0], span[1], span[2] = min(span[0], window.start), max(span[1], window.end), \
            span[2] + 1


def order(windows: Iterable[Window]) -> list[Window]:
    """Windows in the order every store sums them: by start, then pid."""
    return sorted(windows, key=lambda w: (w.start, w.pid))


def combine(windows: Iterable[Window], endpoint: str | None = None) -> QueryResult:
    """The sum of ``windows``: their profiles merged (of ``endpoint``, only the
    samples labelled with it), their summaries merged (of ``endpoint``, only its
    own; the GC pauses of all), the metadata merged with the GC seconds of the
    summed nanoseconds."""
    chosen = order(windows)
    whole = merge(w.summary for w in chosen)
    meta = Metadata.merged([w.meta for w in chosen])
    meta.gc = as_seconds(whole.gc)
    profile = Profile(meta)
    wanted = ("endpoint", endpoint)
    for w in chosen:
        fmap = [profile.frame_id(Frame(*f)) for f in w.frames]
        smap = [profile.stack_id(tuple(fmap[f] for f in stack)) for stack in w.stacks]
        for (sid, labels), (samples, cpu_ns, wall_ns) in w.values.items():
            if endpoint is None or wanted in labels:
                profile.add_values(smap[sid], labels, samples, cpu_ns, wall_ns)
    summary = whole
    if endpoint is not None:
        kept = {endpoint: whole.endpoints[endpoint]} if endpoint in whole.endpoints else {}
        summary = WindowSummary(kept, whole.gc)
    return QueryResult(profile, summary, len(chosen))
