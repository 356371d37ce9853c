"""Keeping a store file small: rollups, retention by age and by size.

- Rollups: windows that ended more than an hour ago are merged into one window
  per minute, those more than a day ago into one per ten minutes, per worker
  (pid, host, service, version, mode, period). Merging adds samples per
  (stack, labels), summaries per endpoint (every histogram bucket) and GC
  pauses per generation, in SQL, so it is exact; only the time resolution of
  old windows coarsens (a query takes a rolled-up window whole or not at all,
  by its start).
- Retention by age: windows that ended more than ``max_age`` ago are deleted.
- Retention by size: while the file's used pages exceed the cap, the oldest
  windows are deleted (in batches sized from the bytes a window costs);
  ``PRAGMA incremental_vacuum`` then gives the freed pages back, so the file
  really shrinks.
- Frames, stacks and label sets no window uses any more are dropped at most
  hourly, moving the interning epoch so every writer forgets its ids.

Any writer may run it: ``meta.maintained_at`` in the file, read under the
write lock, keeps several workers from doing the same work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sqlite3
import struct

from ember.store import schema

TIERS = ((60, 3600.0), (600, 86400.0))
"""(seconds per rolled-up window, age of the windows rolled up into it)."""
PRUNE_SECONDS = 3600.0
"""How often (at most) unused frames, stacks and label sets are dropped."""
SHRINK_AT = 0.95
"""Retention by size starts when the used pages pass this share of the cap (the
next window, and the pages not yet checkpointed from the WAL, fit in the rest)."""
SHRINK_TO = 0.85
"""...and deletes down to this share (so that it does not run at every write)."""
_KEY = ("pid", "host", "service", "version", "mode", "period")


@dataclasses.dataclass
class Totals:
    """What maintenance did."""

    rolled_up: int = 0
    """Windows merged into rolled-up ones (the rolled-up ones not counted)."""
    expired: int = 0
    """Windows deleted for their age."""
    evicted: int = 0
    """Windows deleted to keep the file under its size cap."""
    pruned: int = 0
    """Unused frames, stacks and label sets dropped."""

    def add(self, other: Totals) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the file's pages in use (the file's size once vacuumed)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def maintain(conn: sqlite3.Connection, now: float, *, max_age: float, every: float) -> Totals:
    """Roll up and expire windows (unless another writer did less than ``every``
    seconds ago), then give freed pages back."""
    done = Totals()
    conn.execute("BEGIN IMMEDIATE")
    try:
        last = _meta(conn, "maintained_at", -math.inf)
        if now - last < every:
            conn.execute("COMMIT")
            return done
        for seconds, age in TIERS:
            done.rolled_up += rollup(conn, now, seconds, age)
        old = [wid for (wid,) in conn.execute(
            "SELECT id FROM windows WHERE start + duration < ?", (now - max_age,))]
        delete(conn, old)
        done.expired = len(old)
        if now - _meta(conn, "pruned_at", -math.inf) >= PRUNE_SECONDS:
            done.pruned = prune(conn)
            _set_meta(conn, "pruned_at", now)
        _set_meta(conn, "maintained_at", now)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    conn.execute("PRAGMA incremental_vacuum")
    return done


def rollup(conn: sqlite3.Connection, now: float, seconds: int, age: float) -> int:
    """Merge the windows finer than ``seconds`` whose ``seconds``-bucket ended
    ``age`` ago into one window per bucket and worker. Returns the windows merged."""
    cutoff = math.floor((now - age) / seconds) * seconds
    groups: dict[tuple[tuple[object, ...], int], list[int]] = {}
    columns = ", ".join(_KEY)
    for wid, start, *key in conn.execute(
            f"SELECT id, start, {columns} FROM windows WHERE resolution < ? AND start < ?"
            " ORDER BY start, id", (seconds, cutoff)):
        groups.setdefault((tuple(key), math.floor(start / seconds) * seconds), []).append(wid)
    merged = 0
    match = " AND ".join(f"{c} = ?" for c in _KEY)
    for (key, bucket), ids in groups.items():
        ids += [wid for (wid,) in conn.execute(  # one rolled up here before (late windows)
            f"SELECT id FROM windows WHERE resolution = ? AND {match} AND start >= ?"
            " AND start < ?", (seconds, *key, bucket, bucket + seconds))]
        if len(ids) == 1:
            conn.execute("UPDATE windows SET resolution = ? WHERE id = ?", (seconds, ids[0]))
            continue
        merge(conn, ids, seconds)
        merged += len(ids)
    return merged


def merge(conn: sqlite3.Connection, ids: list[int], resolution: int) -> int:
    """Replace the windows ``ids`` (of one worker) by one window of their sums."""
    chosen = "SELECT value FROM json_each(?)"
    arg = (json.dumps(ids),)
    columns = ", ".join(_KEY)
    row = conn.execute(
        f"SELECT min(start), max(start + duration), sum(truncated), {columns} FROM windows"
        f" WHERE id IN ({chosen})", arg).fetchone()
    start, end, truncated, *key = row
    values = dict(zip(_KEY, key, strict=True))
    wid = schema.insert_window(conn, (start, end - start, values["pid"], values["host"],
                                      values["service"], values["version"], values["mode"],
                                      values["period"], truncated, resolution))
    conn.execute("INSERT INTO samples SELECT ?, stack, labels, sum(samples), sum(cpu_ns),"
                 f" sum(wall_ns) FROM samples WHERE window IN ({chosen}) GROUP BY stack, labels",
                 (wid, *arg))
    sums = ", ".join(f"sum({c})" for c in schema.SUMMARY_COLUMNS)
    conn.execute(f"INSERT INTO summaries SELECT ?, endpoint, {sums} FROM summaries"
                 f" WHERE window IN ({chosen}) GROUP BY endpoint", (wid, *arg))
    conn.execute("INSERT INTO gc SELECT ?, generation, sum(collections), sum(pause_ns) FROM gc"
                 f" WHERE window IN ({chosen}) GROUP BY generation", (wid, *arg))
    delete(conn, ids)
    return wid


def delete(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Delete the windows ``ids`` and their rows."""
    if not ids:
        return
    arg = (json.dumps(ids),)
    for table, column in (("samples", "window"), ("summaries", "window"), ("gc", "window"),
                          ("windows", "id")):
        conn.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                     arg)


def over(conn: sqlite3.Connection, max_bytes: int) -> bool:
    """Whether the file needs :func:`shrink` to stay under ``max_bytes``."""
    return used_bytes(conn) > max_bytes * SHRINK_AT


def shrink(conn: sqlite3.Connection, max_bytes: int) -> Totals:
    """Delete the oldest windows until the used pages are under ``SHRINK_TO`` of
    ``max_bytes`` (the newest window is always kept), vacuum, and checkpoint (the
    file itself shrinks as the WAL is copied back)."""
    done = Totals()
    target = int(max_bytes * SHRINK_TO)
    for _ in range(32):
        used = used_bytes(conn)
        if used <= target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            count = conn.execute("SELECT count(*) FROM windows").fetchone()[0]
            if count <= 1:
                conn.execute("COMMIT")
                break
            per_window = used / count
            batch = min(count - 1, max(1, math.ceil((used - target) / per_window)))
            ids = [wid for (wid,) in conn.execute(
                "SELECT id FROM windows ORDER BY start, id LIMIT ?", (batch,))]
            delete(conn, ids)
            done.evicted += len(ids)
            if batch * 2 >= count:  # the interned tables may be what is big
                done.pruned += prune(conn)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        conn.execute("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    return done


def prune(conn: sqlite3.Connection) -> int:
    """Drop the stacks, frames and label sets no window uses (in the caller's
    transaction); move the interning epoch if any went."""
    before = conn.total_changes
    conn.execute("DELETE FROM stacks WHERE id NOT IN (SELECT stack FROM samples)")
    conn.execute("DELETE FROM labels WHERE id NOT IN (SELECT labels FROM samples)")
    used: set[int] = set()
    for (blob,) in conn.execute("SELECT frames FROM stacks"):
        used.update(struct.unpack(f"<{len(blob) // 4}I", blob))
    conn.execute("DELETE FROM frames WHERE id NOT IN (SELECT value FROM json_each(?))",
                 (json.dumps(sorted(used)),))
    pruned = conn.total_changes - before
    if pruned:
        conn.execute("INSERT INTO meta VALUES ('epoch', 1)"
                     " ON CONFLICT DO UPDATE SET value = value + 1")
    return pruned


def _meta(conn: sqlite3.Connection, key: str, default: float) -> float:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return float(row[0]) if row else default


def _set_meta(conn: sqlite3.Connection, key: str, value: float) -> None:
    conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                 (key, value))


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
