"""StoreSink: windows written from the sink's own thread; a store that cannot
be opened falls back to memory with one warning and keeps taking windows."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import store_windows as sw
from ember.store.memory import MemoryStore
from ember.store.sink import StoreSink
from ember.store.sqlite import SqliteStore
from ember.window import Window

T0 = 1_700_000_000.0


class ThreadNoting(SqliteStore):
    """The real SQLite store, noting which thread writes."""

    threads: list[threading.Thread]

    def write(self, window: Window) -> None:
        self.threads.append(threading.current_thread())
        super().write(window)


def test_windows_are_written_from_the_sinks_own_thread(tmp_path: Path) -> None:
    store = ThreadNoting(tmp_path / "e.db", clock=lambda: T0 + 600)
    store.threads = []
    sink = StoreSink(store)
    windows = [sw.window(T0 + 10 * i, pid=3) for i in range(8)]
    for w in windows:
        sink.window_sealed(w)
    assert sink.wait()
    assert {t.name for t in store.threads} == {"ember-store"}
    assert threading.current_thread() not in store.threads
    sw.same(store.query(), sw.expected(windows))
    sink.close()


@pytest.mark.parametrize("where", ["missing-dir/e.db", "not-sqlite.db"])
def test_a_store_that_cannot_be_opened_falls_back_to_memory_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str) -> None:
    (tmp_path / "not-sqlite.db").write_text("plain text, not a database\n" * 50)
    sink = StoreSink(opener=lambda: SqliteStore(tmp_path / where, clock=lambda: T0 + 600))
    windows = [sw.window(T0 + 10 * i, pid=4, rows=20) for i in range(20)]
    with caplog.at_level(logging.WARNING, logger="ember"):
        for w in windows:
            sink.window_sealed(w)
            sink.wait()
    warnings = [r for r in caplog.records if r.name == "ember" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "in memory" in warnings[0].getMessage()
    assert isinstance(sink.store, MemoryStore) and sink.failure
    assert sink.thread.errors == 0 and sink.thread.handled == 20
    sw.same(sink.store.query(), sw.expected(windows))
    sink.close()


def test_it_takes_a_store_or_an_opener() -> None:
    with pytest.raises(ValueError):
        StoreSink()
    with pytest.raises(ValueError):
        StoreSink(MemoryStore(), opener=MemoryStore)
