"""The SQLite store: one file that every worker process of a host writes its
sealed windows into, and that the viewer and the CLI read while they write.

A window is one transaction (``BEGIN IMMEDIATE``: the file's one write lock,
waited for up to :data:`~ember.store.schema.BUSY_SECONDS`): its frames,
stacks and label sets are interned (``INSERT OR IGNORE`` on their unique
key, then ``SELECT`` the id, so processes inserting the same frame at once
get the same id), and the window costs one row, its sample rows, one summary
row per endpoint and one row per GC generation. Each process remembers the
ids it interned, so a steady service writes rows of integers only; the ids
are remembered only once their transaction committed, and forgotten when
the file's interning epoch moves (maintenance dropped unused ones).

WAL mode: readers see the last committed windows and never block the writer;
a process killed mid-write loses at most the window it was writing. After
writes, :mod:`ember.store.maintenance` rolls old windows up and keeps the
file within its age and size limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from ember import _process
from ember.gcstats import as_seconds
from ember.profile import Labels, Metadata, Profile
from ember.store import QueryResult, StoreError, VersionSeen, WorkerSeen, maintenance, schema
from ember.summary import EndpointSummary, WindowSummary
from ember.window import Window

DEFAULT_MAX_MB = 256.0
"""The file's size cap when none is configured (``EMBER_STORE_MAX_MB``)."""
DEFAULT_MAX_AGE = 7 * 86400.0
"""Windows older than this (seconds) are deleted."""
MAINTAIN_SECONDS = 60.0
"""How often (at most) a writer rolls up and applies the age limit."""


def stack_blob(frame_ids: Iterator[int] | list[int]) -> bytes:
    """The stored form of a stack: its frame ids as little-endian uint32."""
    ids = list(frame_ids)
    return struct.pack(f"<{len(ids)}I", *ids)


def stack_ids(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(blob) // 4}I", blob)


class SqliteStore:
    """A :class:`~ember.store.Store` in the SQLite file at ``path`` (thread-safe).

    ``max_mb``: the size the file is kept under (oldest windows deleted first);
    ``max_age``: seconds a window is kept; ``clock``: Unix time (injectable,
    for tests that simulate days). Raises :class:`~ember.store.StoreError`
    (or a subclass) when the file cannot be opened as a store.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_mb: float = DEFAULT_MAX_MB,
                 max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.time,
                 maintain_every: float = MAINTAIN_SECONDS) -> None:
        self.path = os.fspath(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.max_age = max_age
        self.clock = clock
        self.maintain_every = maintain_every
        self.maintenance = maintenance.Totals()
        """What this process's maintenance did (windows rolled up and deleted)."""
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._conn: sqlite3.Connection | None = schema.connect(self.path)
        self._forget()
        self._last_maintained = -float("inf")
        _live.add(self)

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path}>"

    def _forget(self) -> None:
        self._epoch: object = None
        self._frames: dict[tuple[str, str, int], int] = {}
        self._stacks: dict[bytes, int] = {}
        self._labels: dict[Labels, int] = {}

    # -- writing --------------------------------------------------------------------
    def write(self, window: Window) -> None:
        """Write ``window`` in one transaction; then maintain the file if due."""
        with self._lock:
            conn = self._writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    fresh = self._insert(conn, window)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                self._frames.update(fresh[0])
                self._stacks.update(fresh[1])
                self._labels.update(fresh[2])
                self._maintain(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the ember store {self.path}: {exc}") from None

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the ember store {self.path} is closed")
        return self._conn

    def _insert(self, conn: sqlite3.Connection, window: Window
                ) -> tuple[dict[tuple[str, str, int], int], dict[bytes, int], dict[Labels, int]]:
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        epoch = row[0] if row else 0
        if epoch != self._epoch:
            self._forget()
            self._epoch = epoch
        new_frames: dict[tuple[str, str, int], int] = {}
        new_stacks: dict[bytes, int] = {}
        new_labels: dict[Labels, int] = {}
        fmap = []
        for frame in window.frames:
            key = (frame[0], frame[1], frame[2])
            fid = self._frames.get(key)
            if fid is None:
                fid = new_frames.get(key)
                if fid is None:
                    fid = new_frames[key] = _intern(
                        conn, "INSERT OR IGNORE INTO frames (name, file, line) VALUES (?, ?, ?)",
                        "SELECT id FROM frames WHERE name = ? AND file = ? AND line = ?", key)
            fmap.append(fid)
        smap = []
        for stack in window.stacks:
            blob = stack_blob([fmap[f] for f in stack])
            sid = self._stacks.get(blob)
            if sid is None:
                sid = new_stacks.get(blob)
                if sid is None:
                    sid = new_stacks[blob] = _intern(
                        conn, "INSERT OR IGNORE INTO stacks (frames) VALUES (?)",
                        "SELECT id FROM stacks WHERE frames = ?", (blob,))
            smap.append(sid)
        meta = window.meta
        wid = schema.insert_window(conn, (meta.start, meta.duration, window.pid, meta.host,
                                          meta.service, meta.version, meta.mode, meta.period,
                                          meta.truncated, 0))
        rows = []
        for (sid, labels), (samples, cpu_ns, wall_ns) in window.values.items():
            lid = self._labels.get(labels)
            if lid is None:
                lid = new_labels.get(labels)
                if lid is None:
                    text = json.dumps(labels, separators=(",", ":"))
                    lid = new_labels[labels] = _intern(
                        conn, "INSERT OR IGNORE INTO labels (labels, endpoint) VALUES (?, ?)",
                        "SELECT id FROM labels WHERE labels = ?", (text, dict(labels).get(
                            "endpoint")), select_args=(text,))
            rows.append((wid, smap[sid], lid, samples, cpu_ns, wall_ns))
        # Two value keys may map to one stored stack (a window whose stacks repeat).
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                         " samples = samples + excluded.samples,"
                         " cpu_ns = cpu_ns + excluded.cpu_ns,"
                         " wall_ns = wall_ns + excluded.wall_ns", rows)
        write_summary(conn, wid, window.summary)
        return new_frames, new_stacks, new_labels

    def _maintain(self, conn: sqlite3.Connection) -> None:
        now = self.clock()
        if now - self._last_maintained >= self.maintain_every:
            self._last_maintained = now
            self.maintenance.add(maintenance.maintain(conn, now, max_age=self.max_age,
                                                      every=self.maintain_every))
        if maintenance.over(conn, self.max_bytes):
            self.maintenance.add(maintenance.shrink(conn, self.max_bytes))

    def maintain(self) -> maintenance.Totals:
        """Roll up, apply the age and size limits now (whatever the schedule)."""
        with self._lock:
            conn = self._writer()
            try:
                done = maintenance.maintain(conn, self.clock(), max_age=self.max_age, every=0.0)
                if maintenance.over(conn, self.max_bytes):
                    done.add(maintenance.shrink(conn, self.max_bytes))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot maintain the ember store {self.path}: {exc}") from None
            self.maintenance.add(done)
            return done

    # -- reading --------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._conn is None:
                raise StoreError(f"the ember store {self.path} is closed")
            conn = self._local.conn = schema.connect(self.path)
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement sees the same committed windows."""
        conn = self._reader()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the ember store {self.path}: {exc}") from None

    def query(self, since: float | None = None, until: float | None = None, *,
              endpoint: str | None = None, version: str | None = None,
              pid: int | None = None, service: str | None = None) -> QueryResult:
        where, args = _where(since, until, version, pid, service)
        chosen = f"SELECT id FROM windows WHERE {where}"
        with self._snapshot() as conn:
            metas = [Metadata(start=start, duration=duration, period=period, mode=mode,
                              pids=(wpid,), host=host, service=wservice, version=wversion,
                              truncated=truncated)
                     for start, duration, wpid, host, wservice, wversion, mode, period, truncated
                     in conn.execute("SELECT start, duration, pid, host, service, version, mode,"
                                     f" period, truncated FROM windows WHERE {where}"
                                     " ORDER BY start, pid, id", args)]
            if not metas:
                return QueryResult(Profile(Metadata()), WindowSummary(), 0)
            only = ""
            extra: tuple[object, ...] = ()
            if endpoint is not None:
                only, extra = " AND labels IN (SELECT id FROM labels WHERE endpoint = ?)", \
                    (endpoint,)
            values = conn.execute(
                "SELECT stack, labels, sum(samples), sum(cpu_ns), sum(wall_ns) FROM samples"
                f" WHERE window IN ({chosen}){only} GROUP BY stack, labels",
                (*args, *extra)).fetchall()
            summary = read_summary(conn, chosen, args, endpoint)
            frames, stacks, labels = _tables(conn, values)
        meta = Metadata.merged(metas)
        meta.gc = as_seconds(summary.gc)
        profile = Profile.from_tables(frames, list(stacks.values()),
                                      {(local, labels[lid]): (s, c, w)
                                       for local, lid, s, c, w in _local_ids(values, stacks)},
                                      meta)
        return QueryResult(profile, summary, len(metas))

    def versions(self) -> list[VersionSeen]:
        with self._snapshot() as conn:
            rows = conn.execute("SELECT service, version, min(start), max(start + duration),"
                                " count(*) FROM windows GROUP BY service, version"
                                " ORDER BY 3, 1, 2").fetchall()
        return [VersionSeen(*row) for row in rows]

    def workers(self) -> list[WorkerSeen]:
        with self._snapshot() as conn:
            rows = conn.execute("SELECT host, pid, min(start), max(start + duration), count(*)"
                                " FROM windows GROUP BY host, pid ORDER BY 3, 1, 2").fetchall()
        return [WorkerSeen(*row) for row in rows]

    def integrity(self) -> str:
        """``PRAGMA integrity_check``'s answer (``"ok"`` for a sound file)."""
        with self._snapshot() as conn:
            return "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._lock:
            connections = [c for c in (self._conn, *self._readers) if c is not None]
            self._conn, self._readers = None, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _after_fork_in_child(self) -> None:
        # A connection must not cross a fork: leave the parent's unused (never
        # closed here: closing could touch the parent's locks) and open anew.
        _abandoned.extend(c for c in (self._conn, *self._readers) if c is not None)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers = []
        self._forget()
        if self._conn is not None:
            self._conn = None
            with contextlib.suppress(StoreError):
                self._conn = schema.connect(self.path)


def _intern(conn: sqlite3.Connection, insert: str, select: str, args: tuple[object, ...], *,
            select_args: tuple[object, ...] | None = None) -> int:
    conn.execute(insert, args)
    found: int = conn.execute(select, args if select_args is None else select_args).fetchone()[0]
    return found


def write_summary(conn: sqlite3.Connection, wid: int, summary: WindowSummary) -> None:
    """The summary rows and GC rows of window ``wid``."""
    marks = ", ".join("?" * (2 + len(schema.SUMMARY_COLUMNS)))
    conn.executemany(f"INSERT INTO summaries VALUES ({marks})",
                     [(wid, name, e.requests, e.errors, e.wall_ns, e.cpu_ns, e.gc_ns,
                       *e.latency, *e.cpu) for name, e in summary.endpoints.items()])
    conn.executemany("INSERT INTO gc VALUES (?, ?, ?, ?)",
                     [(wid, gen, count, ns) for gen, (count, ns) in summary.gc.items()])


def read_summary(conn: sqlite3.Connection, chosen: str, args: tuple[object, ...],
                 endpoint: str | None = None) -> WindowSummary:
    """The summed summary of the windows ``chosen`` (an SQL query of their ids)."""
    only, extra = ("AND endpoint = ?", (endpoint,)) if endpoint is not None else ("", ())
    sums = ", ".join(f"sum({c})" for c in schema.SUMMARY_COLUMNS)
    endpoints = {}
    buckets = len(schema.LATENCY)
    for name, *n in conn.execute(f"SELECT endpoint, {sums} FROM summaries WHERE window IN"
                                 f" ({chosen}) {only} GROUP BY endpoint", (*args, *extra)):
        endpoints[name] = EndpointSummary(n[0], n[1], n[2], n[3], n[4], list(n[5:5 + buckets]),
                                          list(n[5 + buckets:]))
    gc = {gen: (count, ns) for gen, count, ns in conn.execute(
        f"SELECT generation, sum(collections), sum(pause_ns) FROM gc WHERE window IN ({chosen})"
        " GROUP BY generation", args)}
    return WindowSummary(endpoints, gc)


def _where(since: float | None, until: float | None, version: str | None, pid: int | None,
           service: str | None) -> tuple[str, tuple[object, ...]]:
    terms, args = ["1"], []
    for term, value in (("start >= ?", since), ("start < ?", until), ("version = ?", version),
                        ("pid = ?", pid), ("service = ?", service)):
        if value is not None:
            terms.append(term)
            args.append(value)
    return " AND ".join(terms), tuple(args)


def _tables(conn: sqlite3.Connection, values: list[tuple[int, int, int, int, int]]
            ) -> tuple[list[tuple[str, str, int]], dict[int, tuple[int, ...]], dict[int, Labels]]:
    """The frames (indexed from 0), stacks (db id -> local frame ids) and label sets
    the rows ``values`` use."""
    sids = json.dumps(sorted({row[0] for row in values}))
    lids = json.dumps(sorted({row[1] for row in values}))
    raw = {sid: stack_ids(blob) for sid, blob in conn.execute(
        "SELECT id, frames FROM stacks WHERE id IN (SELECT value FROM json_each(?))", (sids,))}
    fids = json.dumps(sorted({f for stack in raw.values() for f in stack}))
    frames: list[tuple[str, str, int]] = []
    local: dict[int, int] = {}
    for fid, name, file, line in conn.execute(
            "SELECT id, name, file, line FROM frames WHERE id IN"
            " (SELECT value FROM json_each(?))", (fids,)):
        local[fid] = len(frames)
        frames.append((name, file, line))
    stacks = {sid: tuple(local[f] for f in stack) for sid, stack in raw.items()}
    labels = {lid: tuple((k, v) for k, v in json.loads(text)) for lid, text in conn.execute(
        "SELECT id, labels FROM labels WHERE id IN (SELECT value FROM json_each(?))", (lids,))}
    return frames, stacks, labels


def _local_ids(values: list[tuple[int, int, int, int, int]], stacks: dict[int, tuple[int, ...]]
               ) -> Iterator[tuple[int, int, int, int, int]]:
    """``values`` with each stack's db id replaced by its index in ``stacks``' order."""
    index = {sid: i for i, sid in enumerate(stacks)}
    for sid, lid, s, c, w in values:
        yield index[sid], lid, s, c, w


_live: weakref.WeakSet[SqliteStore] = weakref.WeakSet()
_abandoned: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for store in list(_live):
        store._after_fork_in_child()


_process.after_fork(_after_fork_in_child)
