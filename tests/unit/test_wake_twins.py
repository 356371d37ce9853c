"""The waker twins: the same decisions on the same readings, and the real waits.

``observe()`` applies an instant's readings (given by the test) with the rules
both twins share; the tests feed both the same and compare everything they
report. The real ``wait()`` is tested against real threads: idle instants end
inside the waker, a busy thread is seen on CPU, ``stop()`` wakes it, and (the
compiled twin on CPython 3.11) the GIL comes within the lowered switch
interval, which is then the application's again.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember import _impl

CY = _impl.module("wake", "cython")
PY = _impl.module("wake", "python")
MS = 1_000_000
T0 = 1_000_000_000_000
GONE = 2**22 - 1  # native ids far above pid_max: no clock, every reading is given

fast_gil = pytest.mark.skipif(not CY.fast_gil_available(),
                              reason="needs CPython 3.11 to lower the switch interval")


def pair(**kwargs: Any) -> list[Any]:
    return [CY.Waker(**kwargs), PY.Waker(**kwargs)]


def same(wakers: list[Any]) -> None:
    cy, py = wakers
    assert cy.on_cpu_mask() == py.on_cpu_mask()
    assert cy.windows() == py.windows()
    for name in ("on_cpu", "gone", "unknown_ns", "period_ns", "wake_ns", "wakes"):
        assert getattr(cy, name) == getattr(py, name), name


@contextmanager
def spinning(count: int = 1) -> Iterator[list[threading.Thread]]:
    """Threads burning CPU in pure Python until the block ends."""
    stop: list[bool] = []

    def spin() -> None:
        x = 0
        while not stop:
            x += 1

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        yield threads
    finally:
        stop.append(True)
        for thread in threads:
            thread.join(10)


@contextmanager
def blocked(count: int = 2) -> Iterator[list[threading.Thread]]:
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.05)
        yield threads
    finally:
        release.set()
        for thread in threads:
            thread.join(10)


# -- the same decisions on the same readings --------------------------------------


def test_constants_agree() -> None:
    for name in ("WAKE", "DUE", "STOPPED", "QUIET_NS", "SWITCH_US", "PREEMPTED_NS"):
        assert getattr(CY, name) == getattr(PY, name), name
    assert len({CY.WAKE, CY.DUE, CY.STOPPED}) == 3


def test_randomised_intervals_are_the_same_in_both_twins() -> None:
    for seed in (0, 1, 2**64 - 1, 123456789):
        wakers = pair(seed=seed)
        draws = [[w.uniform() for _ in range(2000)] for w in wakers]
        assert draws[0] == draws[1]
        assert min(draws[0]) >= 0.5 and max(draws[0]) < 1.5
        assert statistics.mean(draws[0]) == pytest.approx(1.0, abs=0.03)
        assert len(set(draws[0])) == 2000  # no short cycle: no aliasing with periodic work
    wakers = pair(seed=7)
    for w in wakers:
        w.begin(T0, 4 * MS)
    assert wakers[0].deadline == wakers[1].deadline
    steps = [[w.advance(4 * MS, w.deadline) for _ in range(500)] for w in wakers]
    assert steps[0] == steps[1]
    gaps = [b - a for a, b in zip(steps[0], steps[0][1:], strict=False)]
    assert min(gaps) >= 2 * MS and max(gaps) < 6 * MS
    assert statistics.mean(gaps) == pytest.approx(4 * MS, rel=0.05)


def test_a_deadline_far_behind_starts_afresh() -> None:
    for w in pair(seed=3):
        w.begin(T0, 10 * MS)
        late = T0 + 10_000 * MS  # a long pause (the process was stopped, say)
        assert w.advance(10 * MS, late) == late  # no burst of catch-up instants
        assert T0 + 10_000 * MS + 5 * MS <= w.advance(10 * MS, late) < late + 15 * MS


def test_slots_are_reused_and_removing_returns_the_window() -> None:
    wakers = pair()
    for w in wakers:
        assert [w.add(GONE - i) for i in range(3)] == [0, 1, 2]
        w.begin(T0, MS)
    for now, reading in ((T0 + MS, 0), (T0 + 2 * MS, 700)):
        for w in wakers:
            w.observe(now, [reading] * 3, None)
    same(wakers)
    for w in wakers:
        assert w.remove(1) == 700
        assert w.remove(1) == 0  # twice is harmless
        assert w.add(GONE - 9) == 1  # the free slot is taken again
        assert w.remove(2) == 700
        assert w.windows() == [700, 0]  # the last slot is gone, slot 1 starts afresh
        assert w.take_windows() == [700, 0]
        assert w.windows() == [0, 0]
    same(wakers)


readings = st.one_of(st.just(-1), st.integers(0, 10**12))


@settings(max_examples=300, deadline=None)
@given(slots=st.integers(1, 5), sampled=st.lists(st.booleans(), min_size=5, max_size=5),
       instants=st.lists(st.tuples(st.lists(readings, min_size=5, max_size=5),
                                   st.one_of(st.none(), st.lists(readings, min_size=5,
                                                                 max_size=5)),
                                   st.integers(-1, 10**9), st.booleans(),
                                   st.integers(0, 20 * MS),
                                   st.lists(st.booleans(), min_size=5, max_size=5)),
                         max_size=25))
def test_both_twins_decide_the_same_on_any_readings(
    slots: int, sampled: list[bool],
    instants: list[tuple[list[int], list[int] | None, int, bool, int, list[bool]]],
) -> None:
    wakers = pair()
    for w in wakers:
        for i in range(slots):
            w.add(GONE - i, sampled[i])
        w.begin(T0, MS)
    now = T0
    for first, second, other, quiet, step, runnable in instants:
        now += step
        for w in wakers:
            w.observe(now, None if quiet else first[:slots],
                      None if second is None else second[:slots], other,
                      runnable=runnable[:slots])
        same(wakers)
        mask = wakers[0].on_cpu_mask()
        assert len(mask) == slots
        assert all(not on for on, s in zip(mask, sampled, strict=False) if not s)
        assert wakers[0].on_cpu == sum(mask)
    assert all(w >= 0 for w in wakers[0].windows())


def test_two_passes_see_who_is_on_cpu_one_pass_who_ran() -> None:
    wakers = pair()
    for w in wakers:
        for i in range(3):
            w.add(GONE - i)
        w.begin(T0, MS)
        w.observe(T0 + MS, [10, 10, 10], [10, 10, 10])  # baselines
    # two passes: slot 0 ran and still runs, slot 1 ran and stopped, slot 2 idle
    for w in wakers:
        assert w.observe(T0 + 2 * MS, [50, 60, 10], [55, 60, 10]) == 1
    same(wakers)
    assert wakers[0].on_cpu_mask() == b"\x01\x00\x00"
    assert wakers[0].windows() == [45, 50, 0]
    assert wakers[0].period_ns == MS
    # slot 1 ran, stood still between the passes, and is runnable: preempted, on CPU
    for w in wakers:
        assert w.observe(T0 + 3 * MS, [55, 70, 10], [55, 70, 10],
                         runnable=[True, True, True]) == 1
    same(wakers)
    assert wakers[0].on_cpu_mask() == b"\x00\x01\x00"  # slot 0 did not run: not asked
    assert wakers[0].period_ns == MS
    # one pass: whoever ran since the last look
    for w in wakers:
        assert w.observe(T0 + 5 * MS, [70, 71, 10]) == 2
    same(wakers)
    assert wakers[0].on_cpu_mask() == b"\x01\x01\x00"
    assert wakers[0].period_ns == 2 * MS
    # quiet: nothing read, nobody on CPU, nothing counted
    for w in wakers:
        assert w.observe(T0 + 6 * MS, None, None, 100) == 0
    same(wakers)
    assert wakers[0].windows() == [60, 61, 0]
    assert wakers[0].wakes == 5


# -- real waits ----------------------------------------------------------------------


@pytest.fixture(params=["cython", "python"])
def wake(request: pytest.FixtureRequest) -> Any:
    return _impl.module("wake", str(request.param))


def test_idle_instants_end_inside_the_waker(wake: Any) -> None:
    with blocked(3) as threads:
        waker = wake.Waker(5)
        for thread in threads:
            waker.add(thread.native_id)
        waker.begin(time.monotonic_ns(), MS)
        start = time.monotonic_ns()
        code = waker.wait(MS, start + 150 * MS, True)
        took = time.monotonic_ns() - start
    assert code == wake.DUE  # only the housekeeping time ended the wait
    assert took >= 150 * MS
    assert waker.wakes >= 30 and waker.idle_wakes == waker.wakes
    assert waker.on_cpu == 0


def test_a_busy_thread_is_on_cpu_at_the_instant(wake: Any) -> None:
    with spinning(1) as threads, blocked(1) as idle:
        waker = wake.Waker(5)
        busy_slot = waker.add(threads[0].native_id)
        waker.add(idle[0].native_id)
        waker.begin(time.monotonic_ns(), 2 * MS)
        masks = []
        for _ in range(5):
            assert waker.wait(2 * MS, time.monotonic_ns() + 10**9, True) == wake.WAKE
            masks.append(waker.on_cpu_mask())
    assert all(m[busy_slot] == 1 for m in masks)
    assert all(m[1 - busy_slot] == 0 for m in masks)
    assert 0 < waker.period_ns < 100 * MS


def test_wall_mode_wakes_at_every_instant(wake: Any) -> None:
    with blocked(1) as threads:
        waker = wake.Waker(5)
        waker.add(threads[0].native_id)
        waker.begin(time.monotonic_ns(), MS)
        assert waker.wait(MS, time.monotonic_ns() + 10**9, False) == wake.WAKE
    assert waker.wakes == 1 and waker.on_cpu == 0


def test_stop_wakes_a_waiting_waker_at_once(wake: Any) -> None:
    waker = wake.Waker(5)
    waker.begin(time.monotonic_ns(), 10**9)
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(waker.wait(10**9, time.monotonic_ns() + 10**12, True)))
    thread.start()
    time.sleep(0.05)
    start = time.monotonic()
    waker.stop()
    thread.join(5)
    assert codes == [wake.STOPPED]
    assert time.monotonic() - start < 0.5
    assert waker.stopped
    assert waker.wait(MS, time.monotonic_ns() + MS, True) == wake.STOPPED  # stays stopped


def test_only_the_compiled_waker_on_311_hands_the_gil_over_on_request() -> None:
    assert PY.Waker().fast_gil is False
    assert PY.fast_gil_available() is False
    assert CY.Waker(fast_gil=False).fast_gil is False
    assert CY.Waker().fast_gil is (sys.version_info[:2] == (3, 11))
    assert CY.fast_gil_available() is (sys.version_info[:2] == (3, 11))


def gil_waits(fast: bool, cycles: int = 25) -> list[int]:
    with spinning(1) as threads:
        waker = CY.Waker(5, fast_gil=fast)
        waker.add(threads[0].native_id)
        waker.begin(time.monotonic_ns(), 2 * MS)
        waits = []
        for _ in range(cycles):
            assert waker.wait(2 * MS, time.monotonic_ns() + 10**9, True) == CY.WAKE
            waits.append(waker.gil_wait_ns)
    return waits


@fast_gil
def test_the_gil_comes_within_the_lowered_interval() -> None:
    fast, plain = statistics.median(gil_waits(True)), statistics.median(gil_waits(False))
    assert plain > 4 * MS  # the holder is asked after the 5 ms switch interval...
    assert fast < 2 * MS  # ...or after 20 us, plus the hand-over
    assert sys.getswitchinterval() == pytest.approx(0.005)


@fast_gil
def test_the_switch_interval_is_the_applications_again() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.002)
        gil_waits(True, 10)
        assert sys.getswitchinterval() == pytest.approx(0.002)

        # The application sets its own while the waker takes the GIL: it is kept.
        waker = CY.Waker(5)
        with spinning(1) as threads:
            waker.add(threads[0].native_id)
            waker.begin(time.monotonic_ns(), MS)
            done = threading.Event()

            def set_it() -> None:
                time.sleep(0.02)
                sys.setswitchinterval(0.003)
                done.set()

            setter = threading.Thread(target=set_it)
            setter.start()
            while not done.is_set():
                waker.wait(MS, time.monotonic_ns() + 10**9, True)
            for _ in range(5):
                waker.wait(MS, time.monotonic_ns() + 10**9, True)
            setter.join()
        assert sys.getswitchinterval() == pytest.approx(0.003)

        # Lowerings nest (several samplers): the last restore gives it back.
        CY.lower_switch_interval(50)
        CY.lower_switch_interval(50)
        assert sys.getswitchinterval() == pytest.approx(50e-6)
        CY.restore_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(50e-6)
        CY.restore_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.003)
        CY.restore_switch_interval()  # one too many: harmless
        assert sys.getswitchinterval() == pytest.approx(0.003)
        # An application interval already below the waker's is left alone.
        sys.setswitchinterval(10e-6)
        CY.lower_switch_interval(50)
        assert sys.getswitchinterval() == pytest.approx(10e-6)
        CY.restore_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(10e-6)
    finally:
        sys.setswitchinterval(before)


@fast_gil
def test_a_long_queue_for_the_gil_is_counted() -> None:
    """With threads queueing for the GIL, the waker sees them take it while it
    waits (and lowers the interval less, not to pass the GIL round them)."""
    with spinning(6) as threads:
        waker = CY.Waker(5)
        for thread in threads:
            waker.add(thread.native_id)
        waker.begin(time.monotonic_ns(), 2 * MS)
        queued = []
        for _ in range(30):
            assert waker.wait(2 * MS, time.monotonic_ns() + 10**9, True) == CY.WAKE
            queued.append(waker.queued)
    assert max(queued) >= 2, queued
    assert sys.getswitchinterval() == pytest.approx(0.005)
    with spinning(1) as threads:  # nobody else: no queue
        waker = CY.Waker(5)
        waker.add(threads[0].native_id)
        waker.begin(time.monotonic_ns(), 2 * MS)
        for _ in range(10):
            waker.wait(2 * MS, time.monotonic_ns() + 10**9, True)
            assert waker.queued == 0
