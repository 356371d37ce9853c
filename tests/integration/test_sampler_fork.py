"""The sampler across ``os.fork()``: the child starts afresh with its own sampler
(when the parent's ran), and a sampler that gave up stays stopped."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pytest

from ember import Sampler, _impl
from ember._process import EmberThread
from ember.sinks import ThreadedSink
from ember.window import Window
from sampling import FaultyCollector, frame_names, run_in_fork, spin_cpu, wait_until


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_fork_restarts_sampler_in_child(implementation: str, mode: str) -> None:
    sampler = Sampler(implementation=implementation, mode=mode, rate=10, budget=0,
                      window=0)
    stop_busy = threading.Event()

    def parent_busy() -> None:  # on CPU most of the time: sampled at most instants
        while not stop_busy.is_set():
            spin_cpu(0.005)
            time.sleep(0.001)

    busy = threading.Thread(target=parent_busy, name="parent-busy")

    def child() -> dict[str, Any]:
        report: dict[str, Any] = {
            "pid": os.getpid(),
            "running": sampler.running,
            "samples_at_fork": sampler.profile().totals().samples,
            "stats_samples_at_fork": sampler.stats()["samples"],
        }

        def spin_in_child() -> None:
            deadline = time.monotonic() + 3
            while sampler.stats()["samples"] < 3 and time.monotonic() < deadline:
                spin_cpu(0.02)

        spin_in_child()
        stats = sampler.stats()
        report["native_id"] = stats["native_id"]
        report["thread_native_id"] = sampler._thread.native_id if sampler._thread else None
        report["errors"] = stats["errors"]
        profile = sampler.stop()
        report["running_after_stop"] = sampler.running
        report["samples"] = profile.totals().samples
        report["labels"] = sorted(profile.label_values("thread"))
        report["pids"] = list(profile.meta.pids)
        report["functions"] = sorted(frame_names(profile))
        return report

    try:
        busy.start()
        sampler.start()
        assert wait_until(lambda: sampler.stats()["samples"] >= 2)
        parent_native_id = sampler.stats()["native_id"]
        report = run_in_fork(child)
        before = sampler.stats()["samples"]
        assert sampler.running
        assert wait_until(lambda: sampler.stats()["samples"] >= before + 2)
        parent_profile = sampler.stop()
    finally:
        sampler.stop()
        stop_busy.set()
        if busy.ident is not None:
            busy.join()
    # the child: running at once, with an empty profile, then sampling the child only
    assert report["running"] is True
    assert report["samples_at_fork"] == 0 and report["stats_samples_at_fork"] == 0
    assert report["samples"] >= 3
    assert report["errors"] == 0
    assert report["running_after_stop"] is False
    assert report["pids"] == [report["pid"]]
    assert report["labels"] == ["MainThread"]  # parent-busy does not exist in the child
    assert any(name.endswith("spin_in_child") for name in report["functions"])
    assert report["native_id"] == report["thread_native_id"] != parent_native_id
    # the parent: unaffected
    assert sampler.stats()["errors"] == 0
    assert parent_profile.meta.pids == (os.getpid(),)
    assert "parent-busy" in parent_profile.label_values("thread")
    assert parent_profile.totals().samples == sampler.stats()["samples"]


def test_self_stopped_sampler_stays_stopped_in_fork_child(implementation: str) -> None:
    """A sampler that gave up after repeated failures must not come back in a child."""
    sampler = Sampler(implementation=implementation, mode="wall", rate=1000, budget=0)
    try:
        sampler.start()
        sampler._collector = FaultyCollector(sampler._collector)
        assert wait_until(lambda: not sampler.running, timeout=20)

        def child() -> dict[str, Any]:
            running = sampler.running
            sampler.stop()
            return {"running": running}

        report = run_in_fork(child)
    finally:
        sampler.stop()
    assert report["running"] is False




@pytest.mark.skipif(not _impl.module("wake", "cython").fast_gil_available(),
                    reason="needs CPython 3.11 to lower the switch interval")
def test_a_fork_child_gets_the_switch_interval_back() -> None:
    """Forked while a sampler had the switch interval lowered (it was taking the
    GIL), the child starts with the application's interval."""
    wake = _impl.module("wake", "cython")
    before = sys.getswitchinterval()
    wake.lower_switch_interval(20)
    try:
        assert sys.getswitchinterval() == pytest.approx(20e-6)
        report = run_in_fork(lambda: {"interval": sys.getswitchinterval()})
    finally:
        wake.restore_switch_interval()
    assert report["interval"] == pytest.approx(before)
    assert sys.getswitchinterval() == pytest.approx(before)


def test_window_sinks_start_afresh_in_a_fork_child(implementation: str) -> None:
    """Forked while a threaded sink was busy with one window and held another: in
    the child the sink's thread runs again, without the parent's windows, and
    gets the child's windows; the parent's sink is unaffected."""
    entered, release = threading.Event(), threading.Event()
    handled: list[tuple[int, int]] = []  # (pid handling, pid of the window)
    parent = os.getpid()

    def handle(window: Window) -> None:
        if os.getpid() == parent and not handled and not release.is_set():
            entered.set()
            release.wait(10)  # the parent's first window: busy across the fork
        handled.append((os.getpid(), window.pid))

    sink = ThreadedSink(handle, name="ember-test-fork-sink")
    sampler = Sampler(implementation=implementation, mode="wall", rate=200, budget=0,
                      window=0.05, sinks=[sink])

    def child() -> dict[str, Any]:
        queued_at_fork = sink._queue.copy()
        report: dict[str, Any] = {"pid": os.getpid(), "running": sink.running,
                                  "queued": len(queued_at_fork),
                                  "sampler_running": sampler.running}
        assert wait_until(lambda: len(handled) >= 2)
        sampler.stop()
        assert sink.wait(5)
        report["handled"] = handled
        report["ember_thread"] = isinstance(sink._thread, EmberThread)
        return report

    try:
        sampler.start()
        assert entered.wait(10)
        assert wait_until(lambda: len(sink._queue) >= 1)  # one more waits behind it
        report = run_in_fork(child)
        release.set()
        sampler.stop()
        assert sink.wait(5)
    finally:
        release.set()
        sampler.stop()
        sink.stop()
    assert report["running"] and report["sampler_running"] and report["ember_thread"]
    assert report["queued"] == 0  # the parent's windows stay the parent's
    child_pid = report["pid"]
    assert report["handled"] and all(h == [child_pid, child_pid] for h in report["handled"])
    assert handled and all(h == (os.getpid(), os.getpid()) for h in handled)
