"""Where sealed windows are kept and read back: one :class:`Store` protocol, two
backends, chosen once from configuration by :func:`open_store`.

- ``"memory"`` (the default): :class:`ember.store.memory.MemoryStore`, the
  windows of this process, bounded by count and bytes;
- a path to a ``.db`` file: :class:`ember.store.sqlite.SqliteStore`, one SQLite
  file (WAL) that every worker process of a host writes its windows into and
  that readers (the viewer, the CLI) query while they write.

A query sums the windows whose start lies in ``[since, until)`` (so adjacent
ranges partition the windows) and that match the filters: one
:class:`~ember.profile.Profile` and one :class:`~ember.summary.WindowSummary`
(per endpoint, and the GC pauses). Samples, summaries and GC pauses are
integers, so the sums are exact whatever the order or the backend; the
merged metadata's GC seconds come from the summed nanoseconds.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple, Protocol

from ember.errors import ConfigError, EmberError
from ember.profile import Profile
from ember.summary import WindowSummary
from ember.window import Window

__all__ = [
    "NotAStoreError",
    "QueryResult",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "VersionSeen",
    "WorkerSeen",
    "open_store",
]

MEMORY = "memory"
SUFFIXES = (".db", ".sqlite", ".sqlite3")
"""File names :func:`open_store` takes for an SQLite store."""


class StoreError(EmberError):
    """A store cannot be opened, read or written; the message says which and why."""


class SchemaVersionError(StoreError):
    """The store file was written by an ember with another schema version."""


class NotAStoreError(StoreError):
    """The file is not an SQLite file, or an SQLite file that is not an ember store."""


@dataclasses.dataclass
class QueryResult:
    """The sum of the windows a query matched."""

    profile: Profile
    summary: WindowSummary
    """Per endpoint the requests that finished in the windows; their GC pauses."""
    windows: int = 0
    """How many windows were summed (a rolled-up window counts once)."""


class VersionSeen(NamedTuple):
    """A (service, version) and the first and last Unix time a window of it covered."""

    service: str
    version: str
    first: float
    last: float
    windows: int


class WorkerSeen(NamedTuple):
    """A worker process (host, pid) and the first and last Unix time it was seen."""

    host: str
    pid: int
    first: float
    last: float
    windows: int


class Store(Protocol):
    """Keeps sealed windows and answers queries over them (any thread)."""

    def write(self, window: Window) -> None:
        """Keep ``window`` (read, never changed). Raises :class:`StoreError`."""

    def query(self, since: float | None = None, until: float | None = None, *,
              endpoint: str | None = None, version: str | None = None,
              pid: int | None = None, service: str | None = None) -> QueryResult:
        """The sum of the windows starting in ``[since, until)`` that match: of
        ``endpoint``, only the samples labelled with it and its summary."""

    def versions(self) -> list[VersionSeen]:
        """Every (service, version) held, oldest first."""

    def workers(self) -> list[WorkerSeen]:
        """Every (host, pid) held, oldest first."""

    def close(self) -> None:
        """Let go of files and connections (a closed store is not used again)."""


def open_store(spec: str | None = None, *, max_mb: float | None = None) -> Store:
    """The store ``spec`` names: ``"memory"`` or a path to a ``.db`` file.

    ``None`` reads ``EMBER_STORE`` (default ``memory``) and, for a file,
    ``EMBER_STORE_MAX_MB`` (the file's size cap). Raises
    :class:`~ember.errors.ConfigError` for a spec that names neither, and
    :class:`StoreError` for a file that cannot be opened as a store.
    """
    if spec is None:
        spec = os.environ.get("EMBER_STORE", "").strip() or MEMORY
        if max_mb is None:
            max_mb = _max_mb(os.environ.get("EMBER_STORE_MAX_MB", ""))
    if spec == MEMORY:
        from ember.store.memory import MemoryStore

        return MemoryStore()
    if not spec.endswith(SUFFIXES):
        raise ConfigError(f"EMBER_STORE={spec!r}: expected 'memory' or a path to a .db file "
                          "(such as /var/lib/ember/ember.db)")
    from ember.store.sqlite import DEFAULT_MAX_MB, SqliteStore

    return SqliteStore(spec, max_mb=DEFAULT_MAX_MB if max_mb is None else max_mb)


def _max_mb(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"EMBER_STORE_MAX_MB={text!r}: expected a positive number of megabytes")
    return value
