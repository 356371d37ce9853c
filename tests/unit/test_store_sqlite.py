"""The SQLite store file: interning, its schema version and what it refuses
(a clear typed error, never a crash)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import store_windows as sw
from ember.errors import EmberError
from ember.store import NotAStoreError, SchemaVersionError, StoreError, open_store
from ember.store.schema import SCHEMA_VERSION
from ember.store.sqlite import SqliteStore

T0 = 1_700_000_000.0


def make(path: Path) -> SqliteStore:
    return SqliteStore(path, clock=lambda: T0 + 600)


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("frames", "stacks", "labels", "windows", "samples", "summaries")}


def test_frames_stacks_and_labels_are_interned_once(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    store = make(path)
    one = sw.window(T0, pid=1, seed=5)
    store.write(one)
    first = counts(path)
    store.write(sw.window(T0 + 10, pid=1, seed=5))  # the same tables again, a new window
    store.close()
    other = make(path)  # another process: nothing cached, the same ids found
    other.write(sw.window(T0 + 20, pid=2, seed=5))
    again = counts(path)
    assert first["frames"] == len(one.frames) and first["stacks"] == len(one.stacks)
    assert {k: again[k] for k in ("frames", "stacks", "labels")} == \
        {k: first[k] for k in ("frames", "stacks", "labels")}
    assert again["windows"] == 3 and again["samples"] == 3 * first["samples"]
    sw.same(other.query(), sw.expected([one, sw.window(T0 + 10, pid=1, seed=5),
                                        sw.window(T0 + 20, pid=2, seed=5)]))
    other.close()


def test_the_file_is_wal_with_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    make(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, SCHEMA_VERSION + 40])
def test_a_file_of_a_newer_ember_is_refused_clearly(tmp_path: Path, version: int) -> None:
    path = tmp_path / "e.db"
    make(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    with pytest.raises(SchemaVersionError, match="newer ember") as caught:
        make(path)
    assert isinstance(caught.value, StoreError) and isinstance(caught.value, EmberError)
    assert str(path) in str(caught.value)


def test_a_file_of_an_older_ember_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    make(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 0")
        conn.execute("CREATE TABLE extra (x)")  # still ember's application id
    with pytest.raises(SchemaVersionError, match="older ember"):
        make(path)


@pytest.mark.parametrize("content", [b"hello, not a database\n" * 100, b"\x00" * 8192,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"not an ember store|cannot open"):
        make(path)
    assert path.read_bytes() == content  # untouched


def test_an_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(NotAStoreError, match="another program"):
        make(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.db").mkdir()
    with pytest.raises(NotAStoreError, match="not a regular file"):
        make(tmp_path / "d.db")


def test_an_unwritable_place_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        make(tmp_path / "missing-dir" / "e.db")


def test_open_store_refuses_a_spec_it_does_not_know(tmp_path: Path) -> None:
    from ember.errors import ConfigError

    with pytest.raises(ConfigError, match="memory"):
        open_store(str(tmp_path / "profiles.txt"))
    with pytest.raises(ConfigError, match="MAX_MB"):
        import os

        os.environ["EMBER_STORE_MAX_MB"] = "lots"
        try:
            open_store()
        finally:
            del os.environ["EMBER_STORE_MAX_MB"]


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = make(tmp_path / "e.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.write(sw.window(T0))
