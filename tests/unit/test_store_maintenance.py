"""Rollups are exact (samples, summaries and GC pauses add); retention keeps
windows within their age and the file under its size cap, across a simulated
week of 8 workers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import store_windows as sw
from ember.store import QueryResult
from ember.store.sqlite import SqliteStore

NOW = 1_700_006_400.0  # a multiple of 600: buckets line up with hours


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def same_sums(got: QueryResult, want: QueryResult) -> None:
    """Equal but for the time resolution: content, summaries, workers, GC, truncation."""
    assert got.profile.canonical() == want.profile.canonical()
    assert got.summary == want.summary
    for field in ("pids", "host", "service", "version", "mode", "period", "gc", "truncated"):
        assert getattr(got.profile.meta, field) == getattr(want.profile.meta, field), field


def resolutions(path: Path) -> dict[int, int]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT resolution, count(*) FROM windows GROUP BY 1"))


def test_rollups_are_exact(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = SqliteStore(tmp_path / "e.db", clock=clock, maintain_every=1e12)
    windows = []
    for pid in (11, 12):
        for first, count in ((NOW - 26 * 3600, 360),   # a day old: 10-minute windows
                             (NOW - 2 * 3600, 180),    # an hour old: 1-minute windows
                             (NOW - 600, 60)):         # recent: as sealed
            windows += [sw.window(first + 10 * i, pid=pid, rows=20) for i in range(count)]
    for w in windows:
        store.write(w)
    before = store.query()
    done = store.maintain()
    assert resolutions(tmp_path / "e.db") == {600: 2 * 6, 60: 2 * 30, 0: 2 * 60}
    assert done.rolled_up == 2 * (360 + 60 + 180)  # a day old: to minutes, then to 10
    after = store.query()
    same_sums(after, before)
    same_sums(after, sw.expected(windows))
    # Any range of whole buckets still sums exactly what started in it.
    for since, until, pid in ((NOW - 26 * 3600 + 600, NOW - 26 * 3600 + 1800, 11),
                              (NOW - 2 * 3600 + 120, NOW - 2 * 3600 + 600, 12),
                              (NOW - 26 * 3600, NOW, None)):
        same_sums(store.query(since=since, until=until, pid=pid),
                  sw.expected([w for w in windows if since <= w.start < until
                               and pid in (None, w.pid)]))
    # A late window of a bucket already rolled up joins its rolled-up window.
    late = sw.window(NOW - 2 * 3600 + 5, pid=11, rows=20, seed=99)
    store.write(late)
    store.maintain()
    assert resolutions(tmp_path / "e.db") == {600: 2 * 6, 60: 2 * 30, 0: 2 * 60}
    same_sums(store.query(), sw.expected([*windows, late]))
    assert store.integrity() == "ok"
    store.close()


def test_windows_older_than_the_age_limit_go(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = SqliteStore(tmp_path / "e.db", clock=clock, max_age=3 * 86400)
    old = [sw.window(NOW - 4 * 86400 + 600 * i, pid=1, rows=10) for i in range(3)]
    new = [sw.window(NOW - 600 + 10 * i, pid=1, rows=10) for i in range(3)]
    for w in (*old, *new):
        store.write(w)
    store.maintain()
    assert store.query().windows == 3
    same_sums(store.query(), sw.expected(new))
    assert store.maintenance.expired == 3
    store.close()


@pytest.mark.slow
def test_a_simulated_week_of_8_workers_stays_under_the_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "week.db"
    cap_mb, step, workers = 10.0, 300.0, 8  # each worker seals a window every 5 minutes
    start = NOW - 7 * 86400
    clock = Clock(start)
    store = SqliteStore(path, clock=clock, max_mb=cap_mb)
    # A few windows per worker, written again and again at their new times.
    pool = {pid: [sw.window(start + k, pid=pid, rows=100, duration=step) for k in range(6)]
            for pid in range(100, 100 + workers)}
    biggest = 0
    steps = int(7 * 86400 / step)
    for i in range(steps):
        clock.now = start + step * (i + 1)
        for windows in pool.values():
            base = windows[i % len(windows)]
            store.write(dataclasses.replace(
                base, meta=dataclasses.replace(base.meta, start=start + step * i)))
        if i % 50 == 0 or i == steps - 1:
            biggest = max(biggest, os.path.getsize(path))
    assert biggest <= cap_mb * 1024 * 1024
    assert store.maintenance.evicted > 0 and store.maintenance.rolled_up > 0
    newest = store.query(since=clock.now - 3600)
    assert newest.profile.meta.pids == tuple(range(100, 100 + workers))
    assert newest.windows == workers * 12
    assert store.integrity() == "ok"
    store.close()
