"""A worker whose store fails under it (run by test_store_fallback.py):

    python store_fallback_child.py PATH MODE

MODE ``open``: the store is opened (by the sink's thread) where it cannot be;
MODE ``full``: after 5 windows the file size limit (RLIMIT_FSIZE, SIGXFSZ
ignored) stops the file growing: the disk is full. Either way 40 windows are
sealed into a StoreSink; prints one JSON line of what happened.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys

import store_windows as sw
from ember.store.sink import StoreSink
from ember.store.sqlite import SqliteStore

T0 = 1_700_000_000.0


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main(path: str, mode: str) -> None:
    counted = Counting()
    logging.getLogger("ember").addHandler(counted)
    sink = StoreSink(opener=lambda: SqliteStore(path, clock=lambda: T0 + 600))
    windows = [sw.window(T0 + 10 * i, pid=9, rows=300) for i in range(40)]
    for i, window in enumerate(windows):
        if mode == "full" and i == 5:
            assert sink.wait()
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = os.path.getsize(path) + os.path.getsize(path + "-wal") + 16384
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        sink.window_sealed(window)
        sink.wait()
    assert sink.wait()
    store = sink.store
    print(json.dumps({"warnings": counted.messages, "store": type(store).__name__,
                      "in_memory": store.query().windows if store is not None else -1,
                      "handled": sink.thread.handled, "errors": sink.thread.errors,
                      "failure": sink.failure}), flush=True)
    sink.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
