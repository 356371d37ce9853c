"""The in-memory store: bounded by count and bytes, the oldest leaving first."""

from __future__ import annotations

import store_windows as sw
from ember.store import open_store
from ember.store.memory import MemoryStore


def test_it_keeps_the_newest_within_its_window_count() -> None:
    store = MemoryStore(max_windows=3)
    windows = [sw.window(100.0 + 10 * i) for i in range(5)]
    for w in windows:
        store.write(w)
    assert store.windows() == windows[2:] and store.dropped == 2
    sw.same(store.query(), sw.expected(windows[2:]))


def test_it_keeps_the_newest_within_its_bytes() -> None:
    windows = [sw.window(100.0 + 10 * i) for i in range(6)]
    cap = sum(w.nbytes for w in windows[-3:])
    store = MemoryStore(max_bytes=cap)
    for w in windows:
        store.write(w)
    assert store.windows() == windows[-3:]
    assert store.nbytes == cap


def test_a_window_above_the_bytes_alone_is_still_kept() -> None:
    store = MemoryStore(max_bytes=1)
    w = sw.window(5.0)
    store.write(w)
    assert store.windows() == [w]


def test_open_store_memory(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("EMBER_STORE", raising=False)
    assert isinstance(open_store(), MemoryStore)
    assert isinstance(open_store("memory"), MemoryStore)
