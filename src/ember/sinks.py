"""Handing sealed windows to their sinks (:class:`ember.window.WindowSink`).

:class:`Sinks` is a sampler's list of sinks: the sampler queues each window it
seals (under its lock) and delivers the queue after letting go of the lock, in
order, each window exactly once, to every sink; a sink that raises is counted
and its first failure logged, and the others still get the window.

:class:`ThreadedSink` is the sink for work that takes time (I/O, converting a
window): ``window_sealed`` puts the window in a bounded queue and returns;
a thread of its own (an :class:`ember._process.EmberThread`, which no sampler
samples) hands each window to ``handle``. When the queue is full the oldest
window is dropped and counted (:attr:`ThreadedSink.dropped`), so a sink that is
slow or down never holds up the sampler nor grows without bound. In a fork
child the queue starts empty (the parent's windows are the parent's) and the
thread runs again if it ran in the parent.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator

from ember import _process
from ember._process import EmberThread
from ember.window import Window, WindowSink

log = logging.getLogger("ember")

MAX_QUEUE = 16
"""Windows a :class:`ThreadedSink` holds unhandled at most (160 s at 10 s windows)."""
FLUSH_SECONDS = 2.0
"""How long a :class:`ThreadedSink`'s ``flush`` waits for its thread at most."""


class Sinks:
    """The sinks of one sampler and the sealed windows not yet delivered."""

    def __init__(self, sinks: Iterable[WindowSink] = ()) -> None:
        self._sinks: list[WindowSink] = []
        for sink in sinks:
            self.add(sink)
        self.errors = 0
        """Exceptions the sinks raised (each sink's first is logged)."""
        self._failed: list[WindowSink] = []
        self.reset()

    def reset(self) -> None:
        """Nothing pending and a new lock (a new sampler run; a fork child)."""
        self._pending: collections.deque[Window] = collections.deque()
        # Re-entrant: a sink that stops the sampler from window_sealed must not hang
        # it (the windows sealed meanwhile reach the sinks from within that call).
        self._lock = threading.RLock()

    def add(self, sink: WindowSink) -> None:
        """Deliver the windows sealed from now on to ``sink`` too (once, however often added)."""
        if not any(s is sink for s in self._sinks):
            self._sinks = [*self._sinks, sink]  # a new list: delivery iterates the old one

    def remove(self, sink: WindowSink) -> None:
        self._sinks = [s for s in self._sinks if s is not sink]

    def __iter__(self) -> Iterator[WindowSink]:
        return iter(self._sinks)

    def __len__(self) -> int:
        return len(self._sinks)

    def put(self, window: Window) -> None:
        """Queue a window just sealed (the sampler's lock held: seal order is queue order)."""
        if self._sinks:
            self._pending.append(window)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def deliver(self) -> None:
        """Hand every queued window to every sink, in order (the sampler's lock not held)."""
        with self._lock:  # one deliverer at a time: windows stay in order
            while self._pending:
                window = self._pending.popleft()
                for sink in self._sinks:
                    try:
                        sink.window_sealed(window)
                    except Exception:
                        self._fault(sink, "took a window")

    def flush(self) -> None:
        """Deliver what is queued, then flush every sink (the sampler stopped)."""
        self.deliver()
        for sink in self._sinks:
            try:
                sink.flush()
            except Exception:
                self._fault(sink, "flushed")

    def _fault(self, sink: WindowSink, what: str) -> None:
        self.errors += 1
        if not any(s is sink for s in self._failed):
            self._failed.append(sink)
            with contextlib.suppress(Exception):
                log.exception("ember: the window sink %r failed as it %s (counted, logged "
                              "once per sink; sampling goes on)", sink, what)


class ThreadedSink:
    """A :class:`~ember.window.WindowSink` that handles windows on a thread of its own.

    ``handle(window)`` runs on that thread for each window, in order; its
    exceptions are counted (:attr:`errors`) and the first logged. With ``tick``
    seconds, ``on_tick()`` runs there too whenever that long passed without a
    window (for work of the sink's own, such as moving buffered values). The
    thread starts with the first window or :meth:`start`; :meth:`stop` ends it
    (after the windows queued).
    """

    def __init__(self, handle: Callable[[Window], None], *, name: str,
                 max_queue: int = MAX_QUEUE, tick: float = 0.0,
                 on_tick: Callable[[], None] | None = None) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self.handle = handle
        self.name = name
        self.max_queue = max_queue
        self.tick = tick
        self.on_tick = on_tick
        self.received = 0
        """Windows handed to :meth:`window_sealed`."""
        self.handled = 0
        """Windows whose ``handle`` returned or raised."""
        self.dropped = 0
        """Windows dropped unhandled because the queue was full (the oldest first)."""
        self.errors = 0
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Window] = collections.deque()
        self._busy = False
        self._stopping = False
        self._thread: EmberThread | None = None

    def __repr__(self) -> str:
        return f"<ThreadedSink {self.name}>"

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def window_sealed(self, window: Window) -> None:
        """Queue ``window`` (dropping the oldest if the queue is full) and return."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(window)
            self.received += 1
            if self._thread is None or not self._thread.is_alive():
                self._start()
            else:  # running, or stopping: it handles what is queued before it ends
                self._cond.notify()

    def start(self) -> None:
        """Start the thread if it is not running."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._start()

    def _start(self) -> None:
        self._stopping = False
        self._thread = EmberThread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """The sampler stopped: wait until the windows queued are handled (at most
        :data:`FLUSH_SECONDS`)."""
        self.wait(FLUSH_SECONDS)

    def wait(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every window queued so far is handled (at most ``timeout``
        seconds); returns whether they are."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                if not self.running:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Handle the windows queued, then end the thread (waiting at most ``timeout``
        seconds); returns whether it ended. A later window starts it again."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    if not self._cond.wait(self.tick or None):
                        break  # tick seconds without a window
                window = self._queue.popleft() if self._queue else None
                if window is None and self._stopping:
                    self._thread = None  # under the lock: a later window starts another
                    self._cond.notify_all()
                    return
                self._busy = window is not None
            try:
                if window is not None:
                    self.handle(window)
                elif self.on_tick is not None:
                    self.on_tick()
            except Exception:
                self._fault()
            finally:
                if window is not None:
                    with self._cond:
                        self._busy = False
                        self.handled += 1
                        self._cond.notify_all()

    def _fault(self) -> None:
        self.errors += 1
        if self.errors == 1:
            with contextlib.suppress(Exception):
                log.exception("ember: %s failed (counted, logged once)", self.name)

    def _after_fork_in_child(self) -> None:
        ran = self._thread is not None and not self._stopping  # (not alive in the child)
        self._reset()
        if ran:
            self.start()


_live: weakref.WeakSet[ThreadedSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sink in list(_live):
        try:
            sink._after_fork_in_child()
        except Exception:
            log.exception("ember: could not restart the window sink %r after fork", sink)


_process.after_fork(_after_fork_in_child)
