"""Regression: a GC during ``sys._current_frames()`` must not deadlock the process.

On CPython 3.11, ``sys._current_frames()`` allocates while holding the
runtime's thread-list lock. If that allocation triggers a collection whose
weakref callback releases the GIL, a thread being started takes the GIL and
blocks on the same lock: both wait forever. The sampler keeps the collector
off during its cycle. The scenario runs in a child process so that a deadlock
fails the test (timeout) instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCENARIO = textwrap.dedent("""
    import gc, sys, threading, time, weakref
    import ember

    gc.set_threshold(1, 1, 1)          # a collection on nearly every allocation

    class Node:
        pass

    def release_gil(_ref):
        time.sleep(0)                  # a weakref callback that gives the GIL away

    keep = []

    def make_garbage():
        a, b = Node(), Node()
        a.other, b.other = b, a        # a cycle: only the collector frees it
        keep.append(weakref.ref(a, release_gil))
        if len(keep) > 1000:
            del keep[:500]

    stop = time.monotonic() + float(sys.argv[2])

    def spawn():
        # Threads starting and exiting take the thread-list lock holding the GIL.
        while time.monotonic() < stop:
            batch = [threading.Thread(target=make_garbage) for _ in range(4)]
            for t in batch:
                t.start()
            for t in batch:
                t.join()

    sampler = ember.Sampler(implementation=sys.argv[1], rate=2000, budget=0, mode="wall")
    sampler.start()
    spawners = [threading.Thread(target=spawn) for _ in range(8)]
    for t in spawners:
        t.start()
    while time.monotonic() < stop:
        make_garbage()
    for t in spawners:
        t.join()
    profile = sampler.stop()
    print("ok", sampler.stats()["cycles"], sampler.stats()["errors"])
""")


def test_gc_during_current_frames_does_not_deadlock(implementation: str) -> None:
    try:
        result = subprocess.run([sys.executable, "-c", SCENARIO, implementation, "3"],
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the process deadlocked (sampler vs. thread start during a GC)")
    assert result.returncode == 0, result.stderr
    ok, cycles, errors = result.stdout.split()
    assert ok == "ok" and int(cycles) > 0 and int(errors) == 0
