"""What the verbs read: profile files, or ember stores queried over a range.

An input whose first 16 bytes are SQLite's header is an ember store
(:class:`ember.store.sqlite.SqliteStore`): instead of being read, it is
queried for the windows the store options select (``--since``, ``--until``,
``--version``, ``--pid``). Those options given with only profile files are
an error: they would silently select nothing.
"""

from __future__ import annotations

import argparse
import datetime
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ember import formats
from ember.errors import EmberError
from ember.profile import Profile
from ember.store import QueryResult

if TYPE_CHECKING:
    from ember.store.sqlite import SqliteStore

SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
TIME_FORMS = "10m, 2h, 1d (that long before now) or an ISO-8601 time"


def parse_time(text: str, now: Callable[[], float] = time.time) -> float:
    """Unix time of ``text``: ``30s``/``10m``/``2h``/``1d`` before ``now()``, or an
    ISO-8601 time (without a UTC offset: local time). Raises :class:`EmberError`."""
    spelled = text.strip()
    relative = _RELATIVE.fullmatch(spelled)
    if relative:
        return now() - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(spelled)
    except ValueError:
        raise EmberError(f"{text!r} is not a time: expected {TIME_FORMS}") from None
    return moment.timestamp()  # naive: local time, as a user at the terminal means


@dataclass(frozen=True)
class Selection:
    """Which windows of a store an input is (every field ``None``: all of them)."""

    since: float | None = None
    until: float | None = None
    version: str | None = None
    pid: int | None = None
    given: tuple[str, ...] = ()
    """The options spelled on the command line (``--since``...), for messages."""


STORE_OPTIONS = ("since", "until", "version", "pid")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--since``, ``--until``, ``--version``, ``--pid``: which windows of a store."""
    group = parser.add_argument_group("store inputs (an ember .db file)")
    group.add_argument("--since", metavar="TIME",
                       help=f"windows starting at or after TIME: {TIME_FORMS}")
    group.add_argument("--until", metavar="TIME",
                       help="windows starting before TIME (same forms)")
    group.add_argument("--version", metavar="V", help="windows of this service version")
    group.add_argument("--pid", type=int, metavar="P", help="windows of this worker process")


def selection(args: argparse.Namespace, now: Callable[[], float] = time.time) -> Selection:
    """The :class:`Selection` the store options of ``args`` name (bad times: EmberError)."""
    since = None if args.since is None else parse_time(args.since, now)
    until = None if args.until is None else parse_time(args.until, now)
    given = tuple(f"--{name}" for name in STORE_OPTIONS if getattr(args, name) is not None)
    return Selection(since, until, args.version, args.pid, given)


def is_store(path: str) -> bool:
    """Whether ``path`` is an SQLite file, by content (an unreadable file is not)."""
    try:
        with open(path, "rb") as stream:
            return stream.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def query_store(path: str, chosen: Selection, endpoint: str | None = None) -> QueryResult:
    """The sum of the windows of the store at ``path`` that ``chosen`` selects.

    No window selected is an error saying what the store holds.
    """
    # SqliteStore, not open_store: open_store's messages speak of EMBER_STORE,
    # and a store copied to a name without .db is still a store.
    from ember.store.sqlite import SqliteStore

    store = SqliteStore(path)  # typed StoreError: one line, exit 2
    try:
        result = store.query(chosen.since, chosen.until, endpoint=endpoint,
                             version=chosen.version, pid=chosen.pid)
        if not result.windows:
            raise EmberError(f"{path}: no windows match{_spelled(chosen)} ({_held(store)})")
        return result
    finally:
        store.close()


def _spelled(chosen: Selection) -> str:
    return f" {', '.join(chosen.given)}" if chosen.given else ""


def _held(store: SqliteStore) -> str:
    versions = store.versions()
    if not versions:
        return "the store is empty"
    first = min(v.first for v in versions)
    last = max(v.last for v in versions)
    workers = store.workers()
    return (f"it holds {sum(v.windows for v in versions)} windows from {_iso(first)} to "
            f"{_iso(last)}, versions {', '.join(sorted({v.version for v in versions}))}, "
            f"pids {', '.join(str(w.pid) for w in workers)}")


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")


def read_inputs(paths: Sequence[str], chosen: Selection | None = None) -> list[Profile]:
    """Every input as a profile: a store queried for ``chosen``, a file read."""
    chosen = chosen or Selection()
    stores = [is_store(path) for path in paths]
    if chosen.given and not any(stores):
        what = "is a profile file" if len(paths) == 1 else "are profile files"
        raise EmberError(f"{chosen.given[0]} applies to a store (an ember .db file); "
                         f"{', '.join(paths)} {what}")
    return [query_store(path, chosen).profile if store else formats.load(path)
            for path, store in zip(paths, stores, strict=True)]
