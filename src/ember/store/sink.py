"""The window sink that keeps sealed windows in a store: :class:`StoreSink`.

Each window is written from the sink's own thread (an
:class:`ember.sinks.ThreadedSink`): never the sampling thread, never a request
thread, and a slow disk only fills the sink's bounded queue.

A store that cannot be opened or written (a read-only directory, a full disk,
a file of another ember) must not cost the service its profiles, nor reach
the sampler as an exception: the sink logs one warning on the ``ember``
logger and keeps every later window in a :class:`~ember.store.memory.MemoryStore`
(:attr:`StoreSink.store` is then that one).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable

from ember.sinks import MAX_QUEUE, ThreadedSink
from ember.store import Store, StoreError
from ember.store.memory import MemoryStore
from ember.window import Window

log = logging.getLogger("ember")


class StoreSink:
    """A :class:`~ember.window.WindowSink` writing windows into ``store``, or into
    the store ``opener()`` returns (called on the sink's thread, at the first
    window, so that opening a file never holds up the sampler)."""

    def __init__(self, store: Store | None = None, *,
                 opener: Callable[[], Store] | None = None, max_queue: int = MAX_QUEUE) -> None:
        if (store is None) == (opener is None):
            raise ValueError("StoreSink takes a store or an opener, one of them")
        self._store = store
        self._opener = opener
        self.failure: str | None = None
        """Why the store was given up for memory (``None``: it was not)."""
        self.thread = ThreadedSink(self._write, name="ember-store", max_queue=max_queue)

    def __repr__(self) -> str:
        return f"<StoreSink {self._store!r}>"

    @property
    def store(self) -> Store | None:
        """Where windows go now (``None`` until an opener has run)."""
        return self._store

    def window_sealed(self, window: Window) -> None:
        """Queue ``window`` for the sink's thread and return."""
        self.thread.window_sealed(window)

    def flush(self) -> None:
        self.thread.flush()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until the windows queued so far are written; whether they are."""
        return self.thread.wait(timeout)

    def close(self) -> None:
        """Write what is queued, end the thread, close the store."""
        self.thread.stop()
        if self._store is not None:
            self._store.close()

    def _write(self, window: Window) -> None:
        try:
            if self._store is None:
                assert self._opener is not None
                self._store = self._opener()
            self._store.write(window)
        except (StoreError, sqlite3.Error, OSError) as exc:
            if isinstance(self._store, MemoryStore) and self.failure is not None:
                raise  # the fallback itself failed: ThreadedSink counts and logs it
            self._fall_back(exc)
            assert self._store is not None
            self._store.write(window)

    def _fall_back(self, exc: BaseException) -> None:
        failed, self._store = self._store, MemoryStore()
        self.failure = str(exc)
        if failed is not None:
            with contextlib.suppress(Exception):
                failed.close()
        with contextlib.suppress(Exception):
            log.warning("ember: the profile store cannot be used (%s); keeping windows in "
                        "memory from now on (check EMBER_STORE's directory and free space)", exc)
