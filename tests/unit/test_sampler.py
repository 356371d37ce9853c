"""The sampler with real threads: modes, budget, windows, robustness (thread
churn, many threads, deep stacks, internal faults), GC pauses and ``stats()``
(forks: ``tests/integration/test_sampler_fork.py``).

Nothing of the code under test is mocked. Fake clocks (``clock=``) and seeded
generators (``rng=``) make the time-based parts deterministic; where a real
sampling thread runs, assertions use CPU-time-based values or loose bounds,
never the wall-clock speed of the code.
"""

from __future__ import annotations

import gc
import itertools
import logging
import random
import sys
import threading
import time
from typing import Any

import pytest

from ember import Sampler, Values
from ember.sampler import MAX_CONSECUTIVE_ERRORS
from sampling import (
    FakeClock,
    FaultyCollector,
    blocked_threads,
    by_thread,
    frame_names,
    spin_cpu,
    stacks_of,
    wait_until,
)


@pytest.fixture
def thread_excepthook(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records exceptions that escape any thread (the sampler's included)."""
    escaped: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    return escaped


# -- modes ----------------------------------------------------------------------


def test_cpu_mode_weights_busy_thread_by_its_cpu_and_skips_blocked_one(
    implementation: str,
) -> None:
    idle_ready, release, go, done = (threading.Event() for _ in range(4))
    measured: list[int] = []

    def idle() -> None:
        idle_ready.set()
        release.wait()

    def busy() -> None:
        go.wait()
        t0 = time.thread_time_ns()
        spin_cpu(0.3)
        measured.append(time.thread_time_ns() - t0)
        done.set()
        release.wait()

    idle_t = threading.Thread(target=idle, name="idle-worker")
    busy_t = threading.Thread(target=busy, name="busy-worker")
    sampler = Sampler(implementation=implementation, mode="cpu", rate=200, budget=0,
                      window=0)
    try:
        idle_t.start()
        assert idle_ready.wait(5)
        time.sleep(0.05)  # let it block before the sampler's first look
        sampler.start()
        busy_t.start()
        # The busy thread is registered before it starts burning CPU.
        assert wait_until(lambda: busy_t.ident in sampler._threads.registered)
        go.set()
        assert done.wait(30)
        wakes = sampler.stats()["wakes"]
        assert wait_until(lambda: sampler.stats()["wakes"] >= wakes + 3)
        profile = sampler.stop()
    finally:
        sampler.stop()
        release.set()
        go.set()
        for t in (idle_t, busy_t):
            if t.ident is not None:
                t.join()
    threads = by_thread(profile)
    # The blocked thread is never on CPU at an instant: it has no sample at all.
    assert "idle-worker" not in threads
    busy_v = threads["busy-worker"]
    assert busy_v.samples >= 10
    # Calibrated: its total is what its own clock measured (and a little more: the
    # thread's CPU outside the spin).
    assert measured and 0 <= busy_v.cpu_ns - measured[0] <= 0.1 * measured[0], (
        busy_v.cpu_ns, measured[0])
    assert "ember-sampler" not in threads


def test_wall_mode_samples_idle_threads_for_elapsed_time(implementation: str) -> None:
    rate = 200
    sampler = Sampler(implementation=implementation, mode="wall", rate=rate, budget=0,
                      window=0)
    with blocked_threads(1, "idle-wall") as (idle,):
        time.sleep(0.02)
        started = time.monotonic_ns()
        sampler.start()
        try:
            time.sleep(0.5)
            profile = sampler.stop()
            elapsed = time.monotonic_ns() - started
        finally:
            sampler.stop()
    values = by_thread(profile)[idle.name]
    assert values.samples >= 10
    assert values.cpu_ns == 0  # wall mode never reads CPU clocks
    # Each visit adds the time since the previous one; the first adds one interval.
    assert values.wall_ns <= elapsed + 1e9 / rate
    assert values.wall_ns >= 0.5 * elapsed
    assert "ember-sampler" not in by_thread(profile)
    assert "Sampler._run" not in frame_names(profile)


def test_wall_mode_wall_ns_is_exact_with_fake_clock(implementation: str) -> None:
    clock = FakeClock()
    sampler = Sampler(implementation=implementation, mode="wall", rate=100, window=0,
                      clock=clock, rng=random.Random(3))
    with blocked_threads(2, "named") as threads:
        for _ in range(50):
            clock.advance(0.007)
            assert sampler.sample_once() >= 2
        profile = sampler.profile()
    per_thread = by_thread(profile)
    for t in threads:
        values = per_thread[t.name]
        assert values.samples == 50
        # first visit: one interval (10 ms); then 49 steps of 7 ms
        assert values.wall_ns == 10_000_000 + 49 * 7_000_000
        assert values.cpu_ns == 0
    # the calling thread is never sampled by its own sample_once
    assert threading.current_thread().name not in per_thread


def test_sampler_thread_never_sampled_even_by_another_sampler(implementation: str) -> None:
    first = Sampler(implementation=implementation, mode="wall", rate=200, budget=0)
    second = Sampler(implementation=implementation, mode="wall", rate=200, budget=0)
    with blocked_threads(1, "visible") as (visible,):
        try:
            first.start()
            second.start()
            assert wait_until(lambda: first.stats()["samples"] >= 10
                              and second.stats()["samples"] >= 10)
            profiles = [first.stop(), second.stop()]
        finally:
            first.stop()
            second.stop()
    for profile in profiles:
        names = by_thread(profile)
        assert visible.name in names
        assert "ember-sampler" not in names
        assert "Sampler._run" not in frame_names(profile)
        assert "Sampler.sample_once" not in frame_names(profile)


# -- budget and randomised deadlines -------------------------------------------


def test_budget_stretches_interval_to_cost_over_budget(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=100, budget=0.01,
                      max_interval=0.5, clock=FakeClock(), rng=random.Random(7))
    # cheap wake-ups: the rate holds
    sampler._cost_ns = 20_000.0  # 20 us / 1% = 2 ms < 10 ms
    assert sampler._mean_interval_ns() == 10_000_000
    assert sampler.stats()["interval"] == pytest.approx(0.01)
    # a 2 ms wake-up needs 200 ms between wake-ups to stay within 1%
    sampler._cost_ns = 2e6
    assert sampler._mean_interval_ns() == 200_000_000
    assert sampler.stats()["interval"] == pytest.approx(0.2)
    # a 100 ms one would need 10 s: capped at max_interval
    sampler._cost_ns = 100e6
    assert sampler._mean_interval_ns() == 500_000_000
    assert sampler.stats()["interval"] == pytest.approx(0.5)
    # the cost drops again: back to the configured rate
    sampler._cost_ns = 10_000.0
    assert sampler._mean_interval_ns() == 10_000_000
    assert sampler.stats()["interval"] == pytest.approx(0.01)


def test_budget_zero_disables_stretching(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=100, budget=0, max_interval=0.5,
                      clock=FakeClock(), rng=random.Random(1))
    sampler._cost_ns = 1e9  # a whole second per wake-up
    assert sampler._mean_interval_ns() == 10_000_000
    assert sampler.stats()["interval"] == pytest.approx(0.01)


def test_budget_with_real_cycles_reaches_max_interval(implementation: str) -> None:
    # A budget of 1e-6 makes any real wake-up (>= 50 ns of CPU) too expensive.
    sampler = Sampler(implementation=implementation, rate=1000, budget=1e-6,
                      max_interval=0.05)
    try:
        sampler.start()
        assert wait_until(lambda: sampler.stats()["wakes"] >= 2)
        assert wait_until(lambda: sampler.stats()["interval"] == pytest.approx(0.05))
        assert sampler.stats()["cycle_cost"] > 0
    finally:
        sampler.stop()


def test_sampling_instants_are_randomised_and_seeded(implementation: str) -> None:
    """The waker draws each interval around the mean; the sampler's rng seeds it."""
    def deadlines(seed: int) -> list[int]:
        sampler = Sampler(implementation=implementation, rate=250, budget=0,
                          clock=FakeClock(), rng=random.Random(seed))
        waker = sampler._waker
        return [waker.advance(sampler._mean_interval_ns(), waker.deadline)
                for _ in range(5000)]

    draws = deadlines(12345)
    gaps = [b - a for a, b in itertools.pairwise(draws)]
    period = 1e9 / 250
    assert len(set(gaps)) > 1000  # not a fixed period: no aliasing with periodic work
    assert sum(gaps) / len(gaps) == pytest.approx(period, rel=0.02)
    assert min(gaps) >= 0.5 * period and max(gaps) <= 1.5 * period
    assert deadlines(12345)[:100] == draws[:100]
    assert deadlines(54321)[:100] != draws[:100]


# -- windows --------------------------------------------------------------------


def test_windows_seal_on_schedule_and_ring_is_bounded(implementation: str) -> None:
    clock = FakeClock()
    sampler = Sampler(implementation=implementation, mode="wall", rate=100, window=1.0,
                      max_windows=3, clock=clock, rng=random.Random(0))
    with blocked_threads(1, "win-worker") as (worker,):
        for cycle in range(1, 41):  # 10 s of fake time in 250 ms steps
            clock.advance(0.25)
            sampler.sample_once()
            # a window seals on the cycle that reaches its end, i.e. every 4 cycles
            assert sampler.stats()["windows"] == min(cycle // 4, 3)
        windows = sampler.windows()
        assert len(windows) == 3
        for w in windows:
            assert w.meta.duration == pytest.approx(1.0)
            values = by_thread(w.profile())[worker.name]
            assert values.samples == 4
            assert values.wall_ns == 1_000_000_000
        # two more cycles in the open window: profile() = 3 sealed + the open one
        for _ in range(2):
            clock.advance(0.25)
            sampler.sample_once()
        assert len(sampler.windows()) == 3
        values = by_thread(sampler.profile())[worker.name]
        assert values.samples == 3 * 4 + 2
        assert values.wall_ns == 3_500_000_000
        assert sampler.stats()["samples"] >= 42  # counts everything, held or dropped
        final = sampler.stop()
    # stop() seals the open window (pushing the oldest out) and returns all held
    assert len(sampler.windows()) == 3
    assert by_thread(final)[worker.name].samples == 4 + 4 + 2
    assert final.totals().samples == sum(w.profile().totals().samples
                                         for w in sampler.windows())


def test_window_zero_never_seals(implementation: str) -> None:
    clock = FakeClock()
    sampler = Sampler(implementation=implementation, mode="wall", window=0,
                      clock=clock, rng=random.Random(0))
    with blocked_threads(1, "one-window") as (worker,):
        for _ in range(100):
            clock.advance(10.0)  # 1000 s of fake time
            sampler.sample_once()
        assert sampler.windows() == []
        assert by_thread(sampler.profile())[worker.name].samples == 100
        final = sampler.stop()
    assert by_thread(final)[worker.name].samples == 100
    assert len(sampler.windows()) == 1


def test_stop_returns_everything_collected(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, mode="wall", rate=200, budget=0,
                      window=0.05)
    with blocked_threads(1, "keep") as (worker,):
        try:
            sampler.start()
            assert wait_until(lambda: sampler.stats()["windows"] >= 2)
            final = sampler.stop()
        finally:
            sampler.stop()
    stats = sampler.stats()
    assert stats["running"] is False
    assert stats["windows"] >= 2
    # nothing was dropped from the ring, so the final profile has every sample
    assert final.totals().samples == stats["samples"]
    assert by_thread(final)[worker.name].samples >= 1


# -- robustness -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_thread_churn_at_high_rate(implementation: str, mode: str,
                                   thread_excepthook: list[Any]) -> None:
    app_errors: list[BaseException] = []
    started = [0]
    stop_spawning = threading.Event()

    def recurse(n: int) -> int:
        return 0 if n == 0 else 1 + recurse(n - 1)

    def short_lived(i: int) -> None:
        try:
            kind = i % 5
            if kind == 0:
                sum(range(5000))
            elif kind == 1:
                recurse(60)
            elif kind == 2:
                time.sleep(0.0005)
            elif kind == 3:
                threading.current_thread().name = f"renamed-{i}"
                [object() for _ in range(500)]
            else:
                try:
                    raise ValueError("application's own")
                except ValueError:
                    pass
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            app_errors.append(exc)

    def spawner(k: int) -> None:
        live: list[threading.Thread] = []
        i = 0
        try:
            while not stop_spawning.is_set():
                t = threading.Thread(target=short_lived, args=(i,), name=f"churn-{k}-{i}")
                t.start()
                started[0] += 1
                live.append(t)
                i += 1
                if len(live) > 8:
                    live.pop(0).join()
        except BaseException as exc:  # pragma: no cover
            app_errors.append(exc)
        finally:
            for t in live:
                t.join()

    sampler = Sampler(implementation=implementation, mode=mode, rate=2000, budget=0,
                      window=0.5)
    spawners = [threading.Thread(target=spawner, args=(k,), name=f"spawner-{k}")
                for k in range(3)]
    try:
        sampler.start()
        for t in spawners:
            t.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # read concurrently with the sampling
            sampler.profile()
            sampler.stats()
            time.sleep(0.05)
        assert sampler.running
    finally:
        stop_spawning.set()
        for t in spawners:
            t.join()
        final = sampler.stop()
    stats = sampler.stats()
    assert app_errors == []
    assert thread_excepthook == []
    assert stats["errors"] == 0
    assert started[0] >= 100
    assert stats["cycles"] >= 50
    assert final.totals().samples == stats["samples"] > 0
    labels = final.label_values("thread")
    assert "ember-sampler" not in labels
    assert any(name.startswith(("churn-", "spawner-", "renamed-")) for name in labels)


def test_thousand_threads_capped_by_max_threads(implementation: str) -> None:
    cap = 50
    clock = FakeClock()
    sampler = Sampler(implementation=implementation, mode="wall", max_threads=cap,
                      window=0, clock=clock, rng=random.Random(5))
    old_size = threading.stack_size(256 * 1024)
    try:
        with blocked_threads(1000, "many") as threads:
            threading.stack_size(old_size)
            for _ in range(20):
                clock.advance(0.01)
                assert sampler.sample_once() == cap  # wall mode: exactly the cap
            stats = sampler.stats()
            assert stats["samples"] == 20 * cap
            assert stats["threads"] >= 1000
            seen = {name for name in by_thread(sampler.profile()) if name.startswith("many-")}
            # a random subset each cycle: far more than `cap` distinct threads over 20
            assert len(seen) > 5 * cap
            assert len(threads) == 1000

            # and a real sampler thread copes with them in both modes (in cpu mode
            # the blocked threads are never on CPU: instants without samples)
            for mode in ("cpu", "wall"):
                live = Sampler(implementation=implementation, mode=mode, rate=200,
                               budget=0, max_threads=cap, window=0)
                try:
                    live.start()
                    assert wait_until(lambda live=live: live.stats()["wakes"] >= 5)
                    final = live.stop()
                finally:
                    live.stop()
                live_stats = live.stats()
                assert live_stats["errors"] == 0
                assert live_stats["samples"] <= live_stats["cycles"] * cap
                assert final.totals().samples == live_stats["samples"]
                blocked_seen = {n for n in by_thread(final) if n.startswith("many-")}
                assert bool(blocked_seen) is (mode == "wall")
    finally:
        threading.stack_size(old_size)


@pytest.mark.parametrize(("depth", "max_depth", "lines"),
                         [(1000, 256, False), (3000, 1024, True), (3000, 1024, False),
                          (1000, 1024, False)])
def test_deep_stacks(implementation: str, depth: int, max_depth: int, lines: bool) -> None:
    reached, release = threading.Event(), threading.Event()

    def recurse(n: int) -> None:
        if n == 0:
            reached.set()
            release.wait()
        else:
            recurse(n - 1)

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 500)
    thread = threading.Thread(target=recurse, args=(depth,), name="deep")
    sampler = Sampler(implementation=implementation, mode="wall", rate=200, budget=0,
                      max_depth=max_depth, lines=lines, window=0)
    try:
        thread.start()
        assert reached.wait(10)
        sampler.start()
        assert wait_until(lambda: by_thread(sampler.profile()).get("deep", Values()).samples
                          >= 3)
        profile = sampler.stop()
    finally:
        sampler.stop()
        release.set()
        if thread.ident is not None:
            thread.join()
        sys.setrecursionlimit(old_limit)
    assert sampler.stats()["errors"] == 0
    stacks = stacks_of(profile, "deep")
    assert stacks
    for stack in stacks:
        names = [f.name for f in stack]
        recursive = sum(name.endswith("recurse") for name in names)
        if depth + 5 > max_depth:
            assert names[0] == "[deep]" and stack[0].file == "" and stack[0].line == 0
            assert "[deep]" not in names[1:]
            assert len(stack) == max_depth
            assert recursive >= max_depth - 10  # the leaf-most frames are kept
        else:
            assert "[deep]" not in names
            assert names[0] == "Thread._bootstrap"
            assert recursive == depth + 1
        assert names[-1] in ("Condition.wait", "Event.wait")
    if lines:  # executing lines: the recursive call line differs from the def line
        recurse_frames = {f for stack in stacks for f in stack if f.name.endswith("recurse")}
        first_line = recurse.__code__.co_firstlineno
        assert all(f.line > first_line for f in recurse_frames)


def test_injected_fault_counted_logged_once_and_recovered(
    implementation: str, caplog: pytest.LogCaptureFixture, thread_excepthook: list[Any],
) -> None:
    caplog.set_level(logging.WARNING, logger="ember")
    app_errors: list[BaseException] = []
    app_rounds = [0]
    stop_app = threading.Event()

    def application() -> None:
        try:
            while not stop_app.is_set():
                sum(range(2000))
                app_rounds[0] += 1
                time.sleep(0.001)
        except BaseException as exc:  # pragma: no cover
            app_errors.append(exc)

    app = threading.Thread(target=application, name="app")
    sampler = Sampler(implementation=implementation, mode="wall", rate=100, budget=0)
    try:
        app.start()
        sampler.start()
        assert wait_until(lambda: sampler.stats()["samples"] >= 2)
        real = sampler._collector
        sampler._collector = FaultyCollector(real)
        assert wait_until(lambda: sampler.stats()["errors"] >= 5)
        rounds_during_fault = app_rounds[0]
        sampler._collector = real  # remove the fault
        assert sampler.running
        samples = sampler.stats()["samples"]
        assert wait_until(lambda: sampler.stats()["samples"] >= samples + 5)
        errors = sampler.stats()["errors"]
        cycles = sampler.stats()["cycles"]
        assert wait_until(lambda: sampler.stats()["cycles"] >= cycles + 5)
        assert sampler.stats()["errors"] == errors  # recovered: no new errors
        assert 5 <= errors < MAX_CONSECUTIVE_ERRORS
        assert sampler.running
    finally:
        sampler.stop()
        stop_app.set()
        if app.ident is not None:
            app.join()
    assert app_errors == [] and thread_excepthook == []
    assert app_rounds[0] > rounds_during_fault > 0
    logged = [r for r in caplog.records if r.name == "ember"]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert "injected fault in collect" in caplog.text


def test_sampler_stops_itself_after_consecutive_failures(
    implementation: str, caplog: pytest.LogCaptureFixture, thread_excepthook: list[Any],
) -> None:
    caplog.set_level(logging.WARNING, logger="ember")
    sampler = Sampler(implementation=implementation, mode="wall", rate=1000, budget=0)
    with blocked_threads(1, "bystander"):
        try:
            sampler.start()
            sampler._collector = FaultyCollector(sampler._collector)
            assert wait_until(lambda: not sampler.running, timeout=20)
            stats = sampler.stats()
        finally:
            sampler.stop()
    assert stats["running"] is False
    assert stats["errors"] == MAX_CONSECUTIVE_ERRORS
    assert thread_excepthook == []
    messages = [r.getMessage() for r in caplog.records if r.name == "ember"]
    assert len(messages) == 2, messages
    assert "counted, logged once" in messages[0]
    assert f"stopped after {MAX_CONSECUTIVE_ERRORS} failing cycles" in messages[1]


@pytest.mark.parametrize("mode", ["cpu", "wall"])
def test_thread_reusing_a_dead_threads_ident_is_sampled_as_itself(
    implementation: str, mode: str,
) -> None:
    """Thread idents are recycled at once; the new thread must not inherit the old
    thread's registration (its name, or its dead CPU clock) until the next refresh."""
    sampler = Sampler(implementation=implementation, mode=mode, rate=100, window=0)
    first_release = threading.Event()
    first = threading.Thread(target=first_release.wait, name="first")
    first.start()
    try:
        sampler.sample_once()
    finally:
        first_release.set()
        first.join()
    stop_second = threading.Event()
    go = threading.Event()

    def second_work() -> None:
        go.wait()
        if threading.get_ident() != first.ident:
            return  # not the one: leave at once
        while not stop_second.is_set():
            sum(range(1000))

    # The OS recycles the ident of a joined thread, though not always for the very
    # next thread: hold candidates alive until one gets it.
    candidates: list[threading.Thread] = []
    second = None
    try:
        for i in range(100):
            candidate = threading.Thread(target=second_work, name=f"candidate-{i}")
            candidate.start()
            candidates.append(candidate)
            if candidate.ident == first.ident:
                second = candidate
                break
        if second is None:
            pytest.skip("the thread ident was not recycled on this platform")
        second.name = "second"
        go.set()
        for t in candidates:
            if t is not second:
                t.join()
        for _ in range(10):
            time.sleep(0.01)
            sampler.sample_once()
    finally:
        stop_second.set()
        go.set()
        for t in candidates:
            t.join()
    threads = by_thread(sampler.profile())
    assert threads.get("second", Values()).samples >= 5, threads
    assert threads.get("first", Values()).samples <= 1, threads


# -- GC -------------------------------------------------------------------------


def test_gc_pauses_recorded_per_generation(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=100, window=0)
    try:
        sampler.start()
        for gen in (0, 1, 2):
            for _ in range(3):
                gc.collect(gen)
        profile = sampler.stop()
    finally:
        sampler.stop()
    for gen in (0, 1, 2):
        count, seconds = profile.meta.gc[gen]
        assert count >= 3
        assert 0 < seconds < 10
    # collections after stop() are not counted
    gc.collect(2)
    assert sampler.profile().meta.gc.get(2, (0, 0.0))[0] == profile.meta.gc[2][0]


def test_reading_the_profile_does_not_consume_gc_stats(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=100, window=0)
    try:
        sampler.start()
        for _ in range(3):
            gc.collect(2)
        first = sampler.profile().meta.gc
        second = sampler.profile().meta.gc
        final = sampler.stop().meta.gc
    finally:
        sampler.stop()
    assert first.get(2, (0, 0.0))[0] >= 3
    assert second.get(2, (0, 0.0))[0] >= 3, "profile() drained the GC counters"
    assert final.get(2, (0, 0.0))[0] >= 3, "stop() lost GC pauses read by profile()"


# -- stats ----------------------------------------------------------------------


def test_stats_keys_and_values(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, mode="cpu", rate=200, budget=0,
                      window=0)
    stop_busy = threading.Event()

    def busy() -> None:
        while not stop_busy.is_set():
            sum(range(1000))

    worker = threading.Thread(target=busy, name="stats-busy")
    try:
        before = sampler.stats()
        assert before["running"] is False and before["samples"] == 0
        worker.start()
        sampler.start()
        assert wait_until(lambda: sampler.stats()["samples"] >= 10)
        stats = sampler.stats()
        assert sampler._thread is not None
        sampler_native_id = sampler._thread.native_id
        final = sampler.stop()
    finally:
        sampler.stop()
        stop_busy.set()
        if worker.ident is not None:
            worker.join()
    assert set(stats) >= {
        "running", "implementation", "mode", "samples", "cycles", "errors", "interval",
        "cycle_cost", "sampler_cpu", "overhead_ratio", "process_cpu_share", "truncated",
        "threads", "windows", "native_id",
    }
    assert stats["running"] is True
    assert stats["implementation"] == implementation == sampler.implementation
    assert stats["mode"] == "cpu"
    assert stats["errors"] == 0
    assert stats["cycles"] >= 1 and stats["samples"] >= 10
    assert stats["interval"] == pytest.approx(1 / 200)
    assert stats["cycle_cost"] > 0 and stats["sampler_cpu"] > 0
    assert 0 < stats["overhead_ratio"] < 1
    assert 0 < stats["process_cpu_share"] <= 1
    assert stats["truncated"] == 0
    assert stats["threads"] >= 1
    assert stats["native_id"] == sampler_native_id != threading.get_native_id()
    after = sampler.stats()
    assert after["running"] is False
    assert after["samples"] == final.totals().samples >= stats["samples"]


def test_idle_instants_take_no_cycle(implementation: str) -> None:
    """cpu mode: when no thread used CPU at an instant, the sampler does not sample
    (the compiled waker does not even take the GIL); it only woke up."""
    with blocked_threads(4, "idle"):
        sampler = Sampler(implementation=implementation, rate=200, budget=0, window=0)
        try:
            sampler.start()
            time.sleep(0.05)
            before = sampler.stats()
            time.sleep(0.4)
            after = sampler.stats()
        finally:
            profile = sampler.stop()
    wakes = after["wakes"] - before["wakes"]
    assert wakes >= 20
    # (this thread's own sleep may be caught waking up: a few instants at most)
    assert after["idle_wakes"] - before["idle_wakes"] >= wakes - 3
    assert after["cycles"] - before["cycles"] <= 3
    assert not any(name.startswith("idle-") for name in by_thread(profile))
