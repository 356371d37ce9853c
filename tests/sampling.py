"""Helpers for tests that run samplers: fake clocks, parked and busy threads,
per-thread sums, injected faults, and running a check in a fork child."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ember import Profile, Values


class FakeClock:
    """A monotonic nanosecond clock that only moves when told to."""

    def __init__(self, start_ns: int = 1_000_000_000_000) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def by_thread(profile: Profile) -> dict[str, Values]:
    """Values summed per ``thread`` label."""
    out: dict[str, Values] = {}
    for _stack, labels, values in profile.samples():
        name = dict(labels).get("thread", "")
        out.setdefault(name, Values()).add(*values.astuple())
    return out


def stacks_of(profile: Profile, thread: str) -> list[tuple[Any, ...]]:
    return [stack for stack, labels, _v in profile.samples()
            if dict(labels).get("thread") == thread]


def frame_names(profile: Profile) -> set[str]:
    return {f.name for stack, _l, _v in profile.samples() for f in stack}


@contextlib.contextmanager
def blocked_threads(count: int, prefix: str) -> Iterator[list[threading.Thread]]:
    """``count`` threads blocked on one Event, all released and joined on exit."""
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, name=f"{prefix}-{i}", daemon=True)
               for i in range(count)]
    try:
        for t in threads:
            t.start()
        yield threads
    finally:
        release.set()
        for t in threads:
            if t.ident is not None:
                t.join(timeout=10)


def spin_cpu(seconds: float) -> None:
    """Burn this thread's CPU for ``seconds`` of its own CPU time."""
    start = time.thread_time_ns()
    while time.thread_time_ns() - start < seconds * 1e9:
        sum(range(300))


class FaultyCollector:
    """Wraps a real collector; sampling (``cycle``, ``collect``) raises, the rest delegates."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def collect(self, *args: Any) -> int:
        raise RuntimeError("injected fault in collect")

    def cycle(self, *args: Any) -> int:
        raise RuntimeError("injected fault in collect (cycle)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_in_fork(child: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; run ``child`` in the child and return what it reports through a pipe."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            signal.alarm(30)  # a hung child must not hang the suite
            os.close(read_fd)
            try:
                report = child()
                code = 0
            except BaseException:
                report = {"child_error": traceback.format_exc()}
            data = json.dumps(report).encode()
            while data:
                data = data[os.write(write_fd, data):]
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    report: dict[str, Any] = json.loads(data) if data else {"child_error": "no report"}
    assert "child_error" not in report, report["child_error"]
    assert os.waitstatus_to_exitcode(status) == 0
    return report

