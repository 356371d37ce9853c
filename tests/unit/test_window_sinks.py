"""Window sinks: every sealed window once and in order (at stop too), a slow sink
never delays the sampler, a failing one is counted and logged once, and the
bounded queue of a ThreadedSink drops its oldest."""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from typing import Any

import pytest

from ember import Sampler, _process, middleware
from ember.profile import Metadata
from ember.sinks import ThreadedSink
from ember.summary import merge
from ember.window import Window
from sampling import FakeClock, blocked_threads, wait_until


class ListSink:
    """A sink that keeps what it is given (and when), on the sealing thread."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.delivered_at: list[float] = []
        self.flushes = 0

    def window_sealed(self, window: Window) -> None:
        self.windows.append(window)
        self.delivered_at.append(time.time())

    def flush(self) -> None:
        self.flushes += 1


class FailingSink(ListSink):
    def window_sealed(self, window: Window) -> None:
        super().window_sealed(window)
        raise RuntimeError("injected sink fault")

    def flush(self) -> None:
        raise RuntimeError("injected flush fault")


def fake_sampler(*sinks: Any, **settings: Any) -> tuple[Sampler, FakeClock]:
    clock = FakeClock()
    settings = {"mode": "wall", "window": 1.0, "max_windows": 1000, **settings}
    return Sampler(clock=clock, rng=random.Random(0), sinks=sinks, **settings), clock


def seal(sampler: Sampler, clock: FakeClock, windows: int) -> None:
    """Seal ``windows`` windows, then sample once more in the next one."""
    for _ in range(4 * windows + 1):  # a window seals every fourth 250 ms cycle
        clock.advance(0.25)
        sampler.sample_once()


def finished_request(endpoint: str, status: int = 200) -> middleware.Request:
    request = middleware.begin("GET", endpoint)
    middleware.end(request, status)
    assert request is not None
    return request


# -- delivery ---------------------------------------------------------------------------
def test_every_sealed_window_reaches_every_sink_once_in_order(implementation: str) -> None:
    first, second = ListSink(), ListSink()
    sampler, clock = fake_sampler(first, implementation=implementation)
    sampler.add_sink(second)
    sampler.add_sink(second)  # once, however often added
    with blocked_threads(1, "sink-worker"):
        seal(sampler, clock, 5)
        assert len(first.windows) == 5 and first.flushes == 0
        clock.advance(0.25)
        sampler.stop()  # seals the open half window: the sinks get it, then flush()
    held = sampler.windows()
    assert len(held) == 6
    for sink in (first, second):
        assert [id(w) for w in sink.windows] == [id(w) for w in held]
        assert sink.flushes == 1
    starts = [w.start for w in first.windows]
    assert starts == sorted(starts)
    assert [w.meta.duration for w in first.windows] == pytest.approx([1.0] * 5 + [0.5])
    assert all(w.end == pytest.approx(w.start + w.meta.duration) for w in first.windows)
    sampler.remove_sink(second)
    assert sampler.sinks == [first]


def test_a_running_sampler_delivers_from_its_thread_and_at_stop(implementation: str) -> None:
    sink = ListSink()
    sampler = Sampler(implementation=implementation, mode="wall", rate=200, budget=0,
                      window=0.05, sinks=[sink])
    with blocked_threads(1, "sink-running"):
        sampler.start()
        assert wait_until(lambda: len(sink.windows) >= 3)
        profile = sampler.stop()
    held = sampler.windows()
    assert [id(w) for w in sink.windows] == [id(w) for w in held]
    assert sum(w.profile().totals().samples for w in sink.windows) == profile.totals().samples
    assert sink.flushes == 1


def test_windows_carry_where_and_what(monkeypatch: pytest.MonkeyPatch) -> None:
    """pid (injectable: two workers in one process), host, service, version from
    EMBER_VERSION; and a window with requests but no samples is still sealed."""
    monkeypatch.setenv("EMBER_VERSION", "1.2.3")
    sinks = [ListSink(), ListSink()]
    try:
        for pid, sink in zip((4001, 4002), sinks, strict=True):
            _process.set_pid(pid)
            sampler, clock = fake_sampler(sink, service="shop", host="web-1")
            sampler.observe_request(finished_request(f"GET /w{pid}", 500))
            clock.advance(1.0)
            sampler.stop()  # never sampled: no values, but a request
    finally:
        _process.set_pid()
    (one,), (two,) = (s.windows for s in sinks)
    assert (one.pid, two.pid) == (4001, 4002)
    for window in (one, two):
        assert window.values == {}
        assert (window.meta.host, window.meta.service, window.meta.version) == \
            ("web-1", "shop", "1.2.3")
    both = merge([one.summary, two.summary])
    assert {name: e.errors for name, e in both.endpoints.items()} == \
        {"GET /w4001": 1, "GET /w4002": 1}


def test_a_window_with_nothing_in_it_is_not_sealed() -> None:
    sink = ListSink()
    gc.disable()  # no collection either
    try:
        sampler, clock = fake_sampler(sink)
        clock.advance(1.0)
        sampler.stop()
    finally:
        gc.enable()
    assert sink.windows == [] and sampler.windows() == []


# -- slow and failing sinks ------------------------------------------------------------
def test_a_slow_sink_never_delays_sealing(implementation: str) -> None:
    release = threading.Event()
    handled: list[Window] = []

    def slow(window: Window) -> None:
        release.wait(0.5)
        handled.append(window)

    slow_sink = ThreadedSink(slow, name="ember-test-slow")
    probe = ListSink()  # after the slow one: it is called once the slow one returned
    sampler, clock = fake_sampler(slow_sink, probe, implementation=implementation)
    durations = []
    with blocked_threads(1, "slow-sink-worker"):
        for _ in range(8):  # eight windows while the sink takes 0.5 s for each
            for _ in range(3):
                clock.advance(0.25)
                sampler.sample_once()
            clock.advance(0.25)
            t0 = time.perf_counter()
            sampler.sample_once()  # the cycle that seals, delivering to both sinks
            durations.append(time.perf_counter() - t0)
        assert len(probe.windows) == 8
        assert slow_sink.handled < 8  # 4 s of handling: far from done
        release.set()
        sampler.stop()
    assert max(durations) < 0.1, durations
    assert slow_sink.wait(5)
    assert [id(w) for w in handled] == [id(w) for w in probe.windows]
    slow_sink.stop()


def test_a_slow_sink_never_delays_a_running_sampler(implementation: str) -> None:
    hurry = threading.Event()

    def slow(window: Window) -> None:
        hurry.wait(0.3)

    slow_sink = ThreadedSink(slow, name="ember-test-slow-running", max_queue=100)
    probe = ListSink()
    sampler = Sampler(implementation=implementation, mode="wall", rate=200, budget=0,
                      window=0.05, sinks=[slow_sink, probe])
    with blocked_threads(1, "slow-running-worker"):
        sampler.start()
        assert wait_until(lambda: len(probe.windows) >= 10)
        behind = slow_sink.handled < len(probe.windows)
        hurry.set()
        sampler.stop()
    # each window reached the probe right after sealing, not after the slow handling
    delays = [at - w.end for at, w in zip(probe.delivered_at, probe.windows, strict=True)]
    assert max(delays) < 0.2, delays
    assert behind  # the slow sink was still handling older windows meanwhile
    assert slow_sink.wait(5)
    slow_sink.stop()


def test_a_failing_sink_is_counted_logged_once_and_breaks_nothing(
        implementation: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ember")
    failing, good = FailingSink(), ListSink()
    sampler, clock = fake_sampler(failing, good, implementation=implementation)
    with blocked_threads(1, "failing-sink-worker"):
        seal(sampler, clock, 4)
        assert sampler.stats()["sink_errors"] == 4
        assert sampler.stats()["errors"] == 0
        sampler.stop()
    stats = sampler.stats()
    assert stats["sink_errors"] == 4 + 1 + 1  # the window at stop, and its flush
    assert len(failing.windows) == len(good.windows) == 5
    assert good.flushes == 1
    logged = [r for r in caplog.records if r.name == "ember"]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "injected sink fault" in caplog.text


def test_a_sink_raising_inside_its_thread_is_counted_once_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ember")
    handled: list[Window] = []

    def handle(window: Window) -> None:
        handled.append(window)
        if len(handled) % 2:
            raise RuntimeError("injected handler fault")

    sink = ThreadedSink(handle, name="ember-test-raising")
    sampler, clock = fake_sampler(sink)
    with blocked_threads(1, "raising-worker"):
        seal(sampler, clock, 4)
        sampler.stop()
    assert sink.wait(5)
    assert len(handled) == 5 and sink.errors == 3 and sink.handled == 5
    assert sampler.stats()["sink_errors"] == 0  # inside the sink's thread: its own count
    logged = [r for r in caplog.records if r.name == "ember"]
    assert len(logged) == 1 and "injected handler fault" in caplog.text
    sink.stop()


# -- the bounded queue ------------------------------------------------------------------
def window(n: int) -> Window:
    return Window(Metadata(start=float(n)), [], [], {})


def test_the_queue_drops_its_oldest_and_counts() -> None:
    entered, release = threading.Event(), threading.Event()
    handled: list[float] = []

    def handle(w: Window) -> None:
        entered.set()
        release.wait(10)
        handled.append(w.start)

    sink = ThreadedSink(handle, name="ember-test-bounded", max_queue=2)
    sink.window_sealed(window(1))
    assert entered.wait(5)  # the thread holds window 1: the queue is empty
    for n in range(2, 6):
        sink.window_sealed(window(n))  # 2, 3 queued; 4 drops 2, 5 drops 3
    assert sink.dropped == 2 and sink.received == 5
    release.set()
    assert sink.wait(5)
    assert handled == [1.0, 4.0, 5.0]
    assert sink.handled == 3
    assert sink.stop()
    assert not sink.running
    sink.window_sealed(window(6))  # a later window starts the thread again
    assert sink.wait(5) and handled[-1] == 6.0
    assert isinstance(sink._thread, _process.EmberThread)
    sink.stop()


def test_a_sink_thread_ticks_without_windows() -> None:
    ticks: list[float] = []
    sink = ThreadedSink(lambda w: None, name="ember-test-tick", tick=0.01,
                        on_tick=lambda: ticks.append(time.monotonic()))
    sink.start()
    assert wait_until(lambda: len(ticks) >= 3)
    sink.stop()
    assert not sink.running
    with pytest.raises(ValueError):
        ThreadedSink(lambda w: None, name="x", max_queue=0)
