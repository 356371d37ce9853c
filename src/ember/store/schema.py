"""The layout of an ember store file, and opening one: creating it, or checking
that it is one this ember reads.

Frames, stacks and label sets are interned once in the file (a stack is a blob
of frame ids, little-endian uint32), so a window costs rows of integers:

- ``windows``: one row per window (rolled-up windows too: ``resolution`` is
  the seconds a rolled-up window spans at most, 0 for one as sealed);
- ``samples``: per window, per (stack, label set): samples, cpu_ns, wall_ns;
- ``summaries``: per window, per endpoint: the request counts and sums, and
  the two histograms as one column per bucket (``l0..`` latency, ``c0..`` CPU),
  so that SQL sums them exactly;
- ``gc``: per window, per generation: collections and pause nanoseconds;
- ``meta``: the store's own bookkeeping (last maintenance, interning epoch).

``PRAGMA application_id`` marks the file as ember's and ``PRAGMA user_version``
holds :data:`SCHEMA_VERSION`; a file with another version, another
application id or no SQLite header raises a :class:`~ember.store.StoreError`
subclass that says so. New files use ``auto_vacuum=INCREMENTAL`` (so deleting
windows can shrink the file) and WAL (readers never block the writer).
"""

from __future__ import annotations

import os
import sqlite3
import stat

from ember.store import NotAStoreError, SchemaVersionError, StoreError
from ember.summary import BUCKETS

SCHEMA_VERSION = 1
APPLICATION_ID = 0x656D6272  # "embr"
BUSY_SECONDS = 10.0
"""How long a connection waits for another process's write lock."""
HEADER = b"SQLite format 3\x00"

LATENCY = [f"l{i}" for i in range(BUCKETS)]
CPU = [f"c{i}" for i in range(BUCKETS)]
SUMMARY_COLUMNS = ["requests", "errors", "wall_ns", "cpu_ns", "gc_ns", *LATENCY, *CPU]
"""The integer columns of ``summaries`` (after ``window`` and ``endpoint``)."""
WINDOW_COLUMNS = ["start", "duration", "pid", "host", "service", "version", "mode", "period",
                  "truncated", "resolution"]

TABLES = (
    "CREATE TABLE frames (id INTEGER PRIMARY KEY, name TEXT NOT NULL, file TEXT NOT NULL,"
    " line INTEGER NOT NULL, UNIQUE (name, file, line))",
    "CREATE TABLE stacks (id INTEGER PRIMARY KEY, frames BLOB NOT NULL UNIQUE)",
    "CREATE TABLE labels (id INTEGER PRIMARY KEY, labels TEXT NOT NULL UNIQUE, endpoint TEXT)",
    "CREATE TABLE windows (id INTEGER PRIMARY KEY, start REAL NOT NULL, duration REAL NOT NULL,"
    " pid INTEGER NOT NULL, host TEXT NOT NULL, service TEXT NOT NULL, version TEXT NOT NULL,"
    " mode TEXT NOT NULL, period REAL NOT NULL, truncated INTEGER NOT NULL,"
    " resolution INTEGER NOT NULL)",
    "CREATE INDEX windows_start ON windows (start)",
    "CREATE TABLE samples (window INTEGER NOT NULL, stack INTEGER NOT NULL,"
    " labels INTEGER NOT NULL, samples INTEGER NOT NULL, cpu_ns INTEGER NOT NULL,"
    " wall_ns INTEGER NOT NULL, PRIMARY KEY (window, stack, labels)) WITHOUT ROWID",
    "CREATE TABLE summaries (window INTEGER NOT NULL, endpoint TEXT NOT NULL, "
    + ", ".join(f"{c} INTEGER NOT NULL" for c in SUMMARY_COLUMNS)
    + ", PRIMARY KEY (window, endpoint)) WITHOUT ROWID",
    "CREATE TABLE gc (window INTEGER NOT NULL, generation INTEGER NOT NULL,"
    " collections INTEGER NOT NULL, pause_ns INTEGER NOT NULL,"
    " PRIMARY KEY (window, generation)) WITHOUT ROWID",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
)


def insert_window(conn: sqlite3.Connection, row: tuple[object, ...]) -> int:
    """Insert a ``windows`` row (values in :data:`WINDOW_COLUMNS` order); its id."""
    wid = conn.execute(f"INSERT INTO windows ({', '.join(WINDOW_COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(WINDOW_COLUMNS))})", row).lastrowid
    assert wid is not None
    return wid


def connect(path: str) -> sqlite3.Connection:
    """A connection to the store at ``path`` (created if missing), checked to be
    an ember store of :data:`SCHEMA_VERSION`, in WAL mode, in autocommit (the
    caller opens its transactions)."""
    _check_file(path)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the ember store {path}: {exc} (is its directory "
                         "writable? set EMBER_STORE to another path, or to memory)") from None
    try:
        _prepare(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc):
            raise NotAStoreError(f"{path} is not an ember store: not an SQLite file") from None
        raise StoreError(f"cannot open the ember store {path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check_file(path: str) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open the ember store {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotAStoreError(f"{path} is not an ember store: not a regular file")
    if info.st_size == 0:
        return
    try:
        with open(path, "rb") as file:
            head = file.read(len(HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read the ember store {path}: {exc.strerror}") from None
    if head != HEADER:
        raise NotAStoreError(f"{path} is not an ember store: not an SQLite file")


def _prepare(conn: sqlite3.Connection, path: str) -> None:
    if _version(conn) == (0, 0, 0):
        # Before any table exists (a no-op if another process just made them).
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
    conn.execute("PRAGMA journal_size_limit = 8388608")
    conn.execute("BEGIN IMMEDIATE")
    try:
        app, version, tables = _version(conn)
        if (app, version, tables) == (0, 0, 0):
            for statement in TABLES:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if (app, version, tables) == (0, 0, 0):
        return  # made just now
    if app != APPLICATION_ID:
        raise NotAStoreError(f"{path} is not an ember store: an SQLite file of another "
                             "program (set EMBER_STORE to a file of ember's own)")
    if version != SCHEMA_VERSION:
        which = "a newer" if version > SCHEMA_VERSION else "an older"
        raise SchemaVersionError(
            f"{path} was written by {which} ember (store schema {version}; this ember reads "
            f"schema {SCHEMA_VERSION}): use the ember that wrote it, or point EMBER_STORE at "
            "a new file")


def _version(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """The file's application id, user version and number of tables."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return int(app), int(version), int(tables)
