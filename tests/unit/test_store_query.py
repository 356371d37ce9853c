"""Both stores answer a query with the windows it matches merged: the profile
(content and metadata) and the summaries, exactly; filtered by time range,
endpoint, version, pid and service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import store_windows as sw
from ember.store import Store, open_store
from ember.store.memory import MemoryStore
from ember.store.sqlite import SqliteStore
from ember.window import Window


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    made: Store = MemoryStore() if request.param == "memory" else \
        SqliteStore(tmp_path / "e.db", clock=lambda: T0 + 600)  # nothing old enough to roll up
    yield made
    made.close()


T0 = 1_700_000_000.0


def fleet() -> list[Window]:
    """Three workers, two versions, two services, 12 windows each."""
    out = []
    for i in range(12):
        for pid, service, version in ((101, "shop", "1.0"), (102, "shop", "1.1"),
                                      (103, "search", "1.0")):
            out.append(sw.window(1_700_000_000.0 + 10 * i, pid=pid, service=service,
                                 version=version))
    return out


def test_a_query_of_everything_is_every_window_merged(store: Store) -> None:
    windows = fleet()
    for w in windows:
        store.write(w)
    sw.same(store.query(), sw.expected(windows))


def test_one_window_round_trips(store: Store) -> None:
    w = sw.window(1_700_000_000.25, pid=7, rows=300)
    store.write(w)
    got = store.query()
    assert got.profile.canonical() == w.profile().canonical()
    sw.same(got, sw.expected([w]))


def test_filters(store: Store) -> None:
    windows = fleet()
    for w in windows:
        store.write(w)
    t0 = 1_700_000_000.0
    cases = [
        ({"since": t0 + 30}, lambda w: w.start >= t0 + 30),
        ({"until": t0 + 30}, lambda w: w.start < t0 + 30),
        ({"since": t0 + 20, "until": t0 + 60}, lambda w: t0 + 20 <= w.start < t0 + 60),
        ({"version": "1.1"}, lambda w: w.meta.version == "1.1"),
        ({"pid": 103}, lambda w: w.pid == 103),
        ({"service": "shop"}, lambda w: w.meta.service == "shop"),
        ({"service": "shop", "version": "1.0", "since": t0 + 50},
         lambda w: w.meta.service == "shop" and w.meta.version == "1.0" and w.start >= t0 + 50),
        ({"pid": 999}, lambda w: False),
    ]
    for query, keep in cases:
        sw.same(store.query(**query), sw.expected([w for w in windows if keep(w)]))


def test_endpoint_filter_keeps_its_samples_and_its_summary(store: Store) -> None:
    windows = fleet()
    for w in windows:
        store.write(w)
    for endpoint in (*sw.ENDPOINTS, "GET /nowhere"):
        got = store.query(endpoint=endpoint, since=1_700_000_040.0)
        want = sw.expected([w for w in windows if w.start >= 1_700_000_040.0], endpoint)
        sw.same(got, want)
        assert all(("endpoint", endpoint) in labels for _, labels, _ in got.profile.samples())


def test_adjacent_ranges_partition_the_windows(store: Store) -> None:
    windows = fleet()
    for w in windows:
        store.write(w)
    t0 = 1_700_000_000.0
    parts = [store.query(since=a, until=b) for a, b in ((None, t0 + 40), (t0 + 40, None))]
    assert sum(p.windows for p in parts) == len(windows)
    whole = store.query()
    assert parts[0].profile.merge(parts[1].profile).canonical() == whole.profile.canonical()


def test_versions_and_workers(store: Store) -> None:
    windows = fleet()
    for w in windows:
        store.write(w)
    t0 = 1_700_000_000.0
    versions = {(v.service, v.version): (v.first, v.last, v.windows) for v in store.versions()}
    assert versions == {("shop", "1.0"): (t0, t0 + 120, 12), ("shop", "1.1"): (t0, t0 + 120, 12),
                        ("search", "1.0"): (t0, t0 + 120, 12)}
    workers = {(w.host, w.pid): (w.first, w.last, w.windows) for w in store.workers()}
    assert workers == {("web-1", pid): (t0, t0 + 120, 12) for pid in (101, 102, 103)}


def test_an_empty_store_answers_an_empty_result(store: Store) -> None:
    got = store.query()
    assert got.windows == 0 and not got.profile.values and not got.summary
    assert store.versions() == [] and store.workers() == []


def test_windows_with_requests_but_no_samples(store: Store) -> None:
    w = sw.window(1_700_000_000.0, rows=0)
    store.write(w)
    sw.same(store.query(), sw.expected([w]))


def test_open_store_picks_sqlite_for_a_db_path(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMBER_STORE", str(tmp_path / "x.db"))
    monkeypatch.setenv("EMBER_STORE_MAX_MB", "12")
    made = open_store()
    try:
        assert isinstance(made, SqliteStore) and made.max_bytes == 12 << 20
    finally:
        made.close()
