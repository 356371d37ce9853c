"""The Collector twins on the same real inputs.

Real threads are parked at known call stacks (recursive functions of known
depth blocked in ``threading.Event.wait``); ``sys._current_frames()`` is taken
once and the very same frames are handed to a Cython and a pure-Python
Collector. Their tables must be identical, and equal to the stacks we built.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType, ModuleType
from typing import Any

import pytest

from ember import _impl

CY = _impl.module("capture", "cython")
PY = _impl.module("capture", "python")
WAKE_CY = _impl.module("wake", "cython")
WAKE_PY = _impl.module("wake", "python")

Frame = tuple[str, str, int]


def frame_of(code: CodeType, line: int | None = None) -> Frame:
    return (code.co_qualname, code.co_filename, code.co_firstlineno if line is None else line)


def line_of(func: Callable[..., Any], text: str, nth: int = 0) -> int:
    """Line number of the ``nth`` source line of ``func`` containing ``text``."""
    source, start = inspect.getsourcelines(func)
    return [start + i for i, src in enumerate(source) if text in src][nth]


COND_WAIT = threading.Condition.wait.__code__
EVENT_WAIT = threading.Event.wait.__code__
# The line where Condition.wait blocks (Event.wait calls it without a timeout).
BLOCK_LINE = [
    start + i
    for source, start in [inspect.getsourcelines(threading.Condition.wait)]
    for i, src in enumerate(source)
    if src.strip() == "waiter.acquire()"
][-1]

ROOT = [
    frame_of(threading.Thread._bootstrap.__code__),  # type: ignore[attr-defined]
    frame_of(threading.Thread._bootstrap_inner.__code__),  # type: ignore[attr-defined]
    frame_of(threading.Thread.run.__code__),
]
LEAF = [frame_of(EVENT_WAIT), frame_of(COND_WAIT)]
DEEP = ("[deep]", "", 0)
TRUNCATED = ("[truncated]", "", 0)

MS = 1_000_000
T0 = 1_000_000_000_000


# -- the parked threads -----------------------------------------------------------


def recurse_a(n: int, release: threading.Event) -> None:
    if n > 1:
        recurse_a(n - 1, release)
        return
    release.wait()


def recurse_b(n: int, release: threading.Event) -> None:
    if n > 1:
        recurse_b(n - 1, release)
        return
    release.wait()


def two_sites(first: bool, release: threading.Event) -> None:
    if first:
        release.wait()
    else:
        release.wait()


A = frame_of(recurse_a.__code__)
B = frame_of(recurse_b.__code__)


def expected(func_frame: Frame, depth: int) -> list[Frame]:
    return [*ROOT, *[func_frame] * depth, *LEAF]


def _is_blocked(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code is COND_WAIT and frame.f_lineno == BLOCK_LINE


@contextmanager
def parked(
    *targets: tuple[Callable[..., None], tuple[Any, ...]],
) -> Iterator[list[threading.Thread]]:
    """Threads running ``fn(*args, release)``, all blocked in ``release.wait()``."""
    release = threading.Event()
    threads = [
        threading.Thread(target=fn, args=(*args, release), daemon=True) for fn, args in targets
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while True:
            current = sys._current_frames()
            if all(_is_blocked(current.get(t.ident or 0)) for t in threads):
                break
            assert time.monotonic() < deadline, "threads did not block in time"
            time.sleep(0.001)
        # Seen blocked, a thread may still be on its way into the kernel wait for a
        # few microseconds: wait until its CPU clock stands still.
        clocks = [PY.thread_cpu_ns(t.native_id or 0) for t in threads]
        while True:
            time.sleep(0.002)
            now = [PY.thread_cpu_ns(t.native_id or 0) for t in threads]
            if now == clocks:
                break
            assert time.monotonic() < deadline, "threads did not settle in time"
            clocks = now
        yield threads
    finally:
        release.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join(10)
    assert not any(t.is_alive() for t in threads)


def frames_of(threads: list[threading.Thread]) -> dict[int, FrameType]:
    """One ``sys._current_frames()``, keeping only ``threads``, in their order."""
    current = sys._current_frames()
    return {t.ident: current[t.ident] for t in threads if t.ident is not None}


def twins(max_stacks: int = 1000, max_depth: int = 128, lines: bool = False) -> list[Any]:
    return [CY.Collector(max_stacks, max_depth, lines), PY.Collector(max_stacks, max_depth, lines)]


def register(collectors: list[Any], threads: list[threading.Thread], labels: list[Any]) -> None:
    for collector in collectors:
        for thread, label in zip(threads, labels, strict=True):
            collector.set_thread(thread.ident, thread.native_id, label)


def collect(
    collectors: list[Any], frames: dict[int, FrameType], now: int, cycle: int = 10 * MS
) -> list[int]:
    """Collect the same frames in both twins (wall mode); they must stay identical."""
    taken = [c.collect(frames, now, cycle, False) for c in collectors]
    assert taken[0] == taken[1]
    assert_identical(collectors)
    return taken


def assert_identical(collectors: list[Any]) -> None:
    cython, python = collectors
    assert cython.snapshot() == python.snapshot()
    assert cython.missing == python.missing
    assert sorted(cython.thread_idents()) == sorted(python.thread_idents())


def named(frames: list[Frame], stacks: list[tuple[int, ...]]) -> list[list[Frame]]:
    return [[frames[i] for i in stack] for stack in stacks]


# -- wall mode: identical tables and the expected stacks ---------------------------


def test_constants_agree() -> None:
    assert CY.DEEP == PY.DEEP == DEEP
    assert CY.TRUNCATED == PY.TRUNCATED == TRUNCATED


def test_wall_mode_identical_tables_and_expected_stacks() -> None:
    la, lb = (("route", "/a"),), (("route", "/b"),)
    with parked((recurse_a, (3,)), (recurse_b, (5,)), (recurse_a, (3,))) as threads:
        frames = frames_of(threads)
        collectors = twins()
        register(collectors, threads, [la, lb, la])
        for now in (T0, T0 + 10 * MS, T0 + 25 * MS):
            assert collect(collectors, frames, now) == [3, 3]
            assert collectors[0].missing == 0
        cython, python = (c.take() for c in collectors)
    assert cython == python
    frames_table, stacks, values, truncated = cython
    # frames interned leaf to root as first met; stacks stored root first
    assert frames_table == [*LEAF[::-1], A, *ROOT[::-1], B]
    assert named(frames_table, stacks) == [expected(A, 3), expected(B, 5)]
    assert all(type(s) is tuple for s in stacks)
    # two threads share stack 0 and labels la: their samples and wall times add up
    assert values == {(0, la): [6, 0, 2 * 35 * MS], (1, lb): [3, 0, 35 * MS]}
    assert truncated == 0


def test_single_thread_frame_order() -> None:
    with parked(
        (recurse_b, (2,)),
    ) as threads:
        collectors = twins()
        register(collectors, threads, [()])
        collect(collectors, frames_of(threads), T0)
        tables = collectors[1].snapshot()
    assert tables[0] == [frame_of(COND_WAIT), frame_of(EVENT_WAIT), B, *ROOT[::-1]]
    assert tables[1] == [(5, 4, 3, 2, 2, 1, 0)]
    assert tables[2] == {(0, ()): [1, 0, 10 * MS]}


def test_thread_registered_with_labels_none_is_never_sampled() -> None:
    with parked((recurse_b, (2,)), (recurse_b, (3,))) as threads:
        collectors = twins()
        register(collectors, threads, [None, (("thread", "t"),)])
        for c in collectors:
            c.collect(frames_of(threads), T0, 10 * MS, False)
            assert c.missing == 0
        tables = [c.snapshot() for c in collectors]
    assert tables[0] == tables[1]
    assert {labels for (_, labels) in tables[0][2]} == {(("thread", "t"),)}


def test_stack_deeper_than_max_depth_gets_a_deep_root() -> None:
    # 3 root frames + n recursive frames + 2 leaf frames
    with parked((recurse_a, (3,)), (recurse_a, (4,)), (recurse_b, (20,))) as threads:
        frames = frames_of(threads)
        collectors = twins(max_depth=8)
        shallowest = twins(max_depth=2)
        for pair in (collectors, shallowest):
            register(pair, threads, [1, 2, 3])
            for now in (T0, T0 + 10 * MS):
                assert collect(pair, frames, now) == [3, 3]
        tables = collectors[0].snapshot()
        shallow = shallowest[0].snapshot()
    frames_table, stacks, values, _ = tables
    assert named(frames_table, stacks) == [
        expected(A, 3),  # exactly max_depth frames: not deep
        [DEEP, ROOT[2], A, A, A, A, *LEAF],  # max_depth - 1 leaf-most under [deep]
        [DEEP, B, B, B, B, B, *LEAF],
    ]
    assert all(len(stack) == 8 for stack in stacks)
    # the [deep] frame is interned after the frames of the first deep stack
    assert frames_table == [*LEAF[::-1], A, *ROOT[::-1], DEEP, B]
    assert values == {(0, 1): [2, 0, 20 * MS], (1, 2): [2, 0, 20 * MS], (2, 3): [2, 0, 20 * MS]}
    # max_depth 2: every stack is [deep] + its leaf, so all three threads share one
    assert named(shallow[0], shallow[1]) == [[DEEP, LEAF[1]]]
    assert shallow[2] == {(0, 1): [2, 0, 20 * MS], (0, 2): [2, 0, 20 * MS], (0, 3): [2, 0, 20 * MS]}


def test_max_stacks_overflow_counts_into_truncated_stack() -> None:
    targets = [(recurse_a, (1,)), (recurse_a, (2,)), (recurse_b, (1,)), (recurse_b, (2,))]
    with parked(*targets) as threads:
        frames = frames_of(threads)
        collectors = twins(max_stacks=2)
        register(collectors, threads, ["t0", "t1", "t2", "t3"])
        for cycle in range(3):
            assert collect(collectors, frames, T0 + cycle * 10 * MS) == [4, 4]
            assert collectors[0].truncated == 2 * (cycle + 1)
        tables = [c.take() for c in collectors]
        assert tables[0] == tables[1]
        frames_table, stacks, values, truncated = tables[0]
        assert named(frames_table, stacks) == [expected(A, 1), expected(A, 2), [TRUNCATED]]
        assert B not in frames_table  # truncated stacks intern none of their frames
        assert truncated == 6
        assert values == {
            (0, "t0"): [3, 0, 30 * MS],
            (1, "t1"): [3, 0, 30 * MS],
            (2, "t2"): [3, 0, 30 * MS],
            (2, "t3"): [3, 0, 30 * MS],
        }
        # a new window starts empty: the first two stacks met get ids 0 and 1 again
        reordered = {t.ident: frames[t.ident] for t in threads[::-1]}
        assert collect(collectors, reordered, T0 + 30 * MS) == [4, 4]
        frames_table, stacks, values, truncated = collectors[0].snapshot()
        assert named(frames_table, stacks) == [expected(B, 2), expected(B, 1), [TRUNCATED]]
        assert truncated == 2
        assert values[(2, "t0")] == [1, 0, 10 * MS]

        # max_stacks=1: the second distinct stack already overflows
        single = twins(max_stacks=1)
        register(single, threads, ["t0", "t1", "t2", "t3"])
        collect(single, frames, T0)
        frames_table, stacks, values, truncated = single[1].snapshot()
        assert named(frames_table, stacks) == [expected(A, 1), [TRUNCATED]]
        assert truncated == 3


def test_lines_mode_frames_carry_the_executing_line() -> None:
    call_a = line_of(recurse_a, "recurse_a(n - 1")
    wait_a = line_of(recurse_a, "release.wait()")
    first, second = line_of(two_sites, "release.wait()", 0), line_of(two_sites, "release.wait()", 1)
    code_a, code_sites = recurse_a.__code__, two_sites.__code__
    with parked((recurse_a, (3,)), (two_sites, (True,)), (two_sites, (False,))) as threads:
        frames = frames_of(threads)
        # threading's own frames: the line each one is executing now
        root_lines = []
        f: FrameType | None = frames[threads[0].ident or 0]
        while f is not None:
            root_lines.append(f.f_lineno)
            f = f.f_back
        event_line, root = root_lines[1], root_lines[:-4:-1]
        with_lines = twins(lines=True)
        without = twins(lines=False)
        for pair in (with_lines, without):
            register(pair, threads, ["x", "x", "x"])
            for now in (T0, T0 + 10 * MS, T0 + 20 * MS):
                assert collect(pair, frames, now) == [3, 3]
        lines_tables = with_lines[0].snapshot()
        plain_tables = without[0].snapshot()

    root_frames = [(q, f, line) for (q, f, _), line in zip(ROOT, root, strict=True)]
    leaf_frames = [frame_of(EVENT_WAIT, event_line), frame_of(COND_WAIT, BLOCK_LINE)]
    assert named(lines_tables[0], lines_tables[1]) == [
        [*root_frames, frame_of(code_a, call_a), frame_of(code_a, call_a),
         frame_of(code_a, wait_a), *leaf_frames],
        [*root_frames, frame_of(code_sites, first), *leaf_frames],
        [*root_frames, frame_of(code_sites, second), *leaf_frames],
    ]  # fmt: skip
    assert lines_tables[2] == {(sid, "x"): [3, 0, 30 * MS] for sid in range(3)}
    # without lines both two_sites threads are in the same stack
    sites = frame_of(code_sites)
    assert named(plain_tables[0], plain_tables[1]) == [expected(A, 3), expected(sites, 1)]
    assert plain_tables[2] == {(0, "x"): [3, 0, 30 * MS], (1, "x"): [6, 0, 60 * MS]}


def _no_line_function() -> Callable[..., None]:
    namespace: dict[str, Any] = {}
    source = "def no_lines(release):\n    release.wait()\n"
    exec(compile(source, "<no-lines>", "exec"), namespace)
    func = namespace["no_lines"]
    func.__code__ = func.__code__.replace(co_linetable=b"")
    return func  # type: ignore[no-any-return]


def test_lines_mode_frame_without_line_number_same_in_both_twins() -> None:
    # A code object without a line table (code.replace(co_linetable=b"")): its
    # frame's f_lineno is None. Both twins must still give identical tables.
    no_lines = _no_line_function()
    with parked((no_lines, ())) as threads:
        frames = frames_of(threads)
        leaf = frames[threads[0].ident or 0]
        assert leaf.f_back is not None and leaf.f_back.f_back is not None
        assert leaf.f_back.f_back.f_code is no_lines.__code__
        assert leaf.f_back.f_back.f_lineno is None
        collectors = twins(lines=True)
        register(collectors, threads, [()])
        assert [c.collect(frames, T0, MS, False) for c in collectors] == [1, 1]
        cython, python = (c.snapshot() for c in collectors)
    assert [f for f in cython[0] if f[1] == "<no-lines>"] == [
        f for f in python[0] if f[1] == "<no-lines>"
    ]
    assert cython == python


# -- threads: labels, stacks and wall time over cycles ----------------------------


def test_labels_changed_between_cycles() -> None:
    alice, bob = (("user", "alice"),), (("user", "bob"),)
    with parked((recurse_a, (2,)), (recurse_b, (2,))) as threads:
        frames = frames_of(threads[:1])
        ident = threads[0].ident
        collectors = twins()
        register(collectors, threads[:1], [alice])
        collect(collectors, frames, T0)  # first visit: cycle_ns
        for c in collectors:
            c.set_thread(ident, threads[0].native_id, bob)
        collect(collectors, frames, T0 + 30 * MS)
        alice_again = tuple(list(alice))  # equal, not the same object
        assert alice_again is not alice
        for c in collectors:
            c.set_thread(ident, threads[0].native_id, alice_again)
        collect(collectors, frames, T0 + 70 * MS)
        collect(collectors, frames, T0 + 140 * MS)
        assert collectors[0].snapshot()[2] == {
            (0, alice): [3, 0, (10 + 40 + 70) * MS],
            (0, bob): [1, 0, 30 * MS],
        }
        # a new native id is a new thread: its wall time restarts at cycle_ns
        for c in collectors:
            c.set_thread(ident, threads[1].native_id, bob)
        collect(collectors, frames, T0 + 500 * MS, cycle=7 * MS)
        assert collectors[1].snapshot()[2][(0, bob)] == [2, 0, (30 + 7) * MS]


def test_stack_changing_between_cycles() -> None:
    with parked((recurse_a, (2,)), (recurse_b, (3,))) as threads:
        frames = frames_of(threads)
        ident = threads[0].ident or 0
        as_a = {ident: frames[ident]}
        as_b = {ident: frames[threads[1].ident or 0]}
        collectors = twins()
        register(collectors, threads[:1], ["l"])
        for i, sample in enumerate([as_a, as_a, as_b, as_a, as_b, as_b]):
            collect(collectors, sample, T0 + i * 10 * MS)
        frames_table, stacks, values, _ = collectors[0].snapshot()
    assert named(frames_table, stacks) == [expected(A, 2), expected(B, 3)]
    assert values == {(0, "l"): [3, 0, 30 * MS], (1, "l"): [3, 0, 30 * MS]}


def test_wall_ns_first_visit_is_cycle_then_time_since_last_visit() -> None:
    with parked((recurse_a, (1,)), (recurse_b, (1,))) as threads:
        frames = frames_of(threads)
        only_a = {threads[0].ident: frames[threads[0].ident]}
        collectors = twins()
        register(collectors, threads, ["a", "b"])
        walls = []
        previous = {0: 0, 1: 0}
        for now, sample in [(T0, frames), (T0 + 4 * MS, only_a), (T0 + 19 * MS, frames),
                            (T0 + 20 * MS, frames)]:  # fmt: skip
            collect(collectors, sample, now, cycle=5 * MS)
            values = collectors[0].snapshot()[2]
            current = {sid: values[(sid, label)][2] for sid, label in [(0, "a"), (1, "b")]}
            walls.append([current[sid] - previous[sid] for sid in (0, 1)])
            previous = current
    assert walls == [[5 * MS, 5 * MS], [4 * MS, 0], [15 * MS, 19 * MS], [1 * MS, 1 * MS]]


def test_missing_counts_unregistered_threads() -> None:
    with parked((recurse_a, (1,)), (recurse_a, (2,)), (recurse_b, (1,))) as threads:
        frames = frames_of(threads)
        collectors = twins()
        register(collectors, threads[:1], ["a"])
        assert collect(collectors, frames, T0) == [1, 1]
        assert [c.missing for c in collectors] == [2, 2]
        assert collect(collectors, frames_of(threads[:1]), T0 + MS) == [1, 1]
        assert [c.missing for c in collectors] == [0, 0]  # per call, not cumulative
        for c in collectors:
            c.drop_thread(threads[0].ident)
            c.drop_thread(threads[0].ident)  # dropping twice is harmless
            assert c.thread_idents() == []
        assert collect(collectors, frames, T0 + 2 * MS) == [0, 0]
        assert [c.missing for c in collectors] == [3, 3]
        assert collectors[0].snapshot()[2] == {(0, "a"): [2, 0, 11 * MS]}


def test_take_resets_tables_but_keeps_threads() -> None:
    with parked((recurse_a, (2,)), (recurse_b, (1,))) as threads:
        frames = frames_of(threads)
        collectors = twins(max_stacks=1)
        register(collectors, threads, ["a", "b"])
        collect(collectors, frames, T0)
        taken = [c.take() for c in collectors]
        assert taken[0] == taken[1]
        kept = [(list(t[0]), list(t[1]), dict(t[2]), t[3]) for t in taken]
        assert taken[0][3] == 1
        for c in collectors:
            assert c.snapshot() == ([], [], {}, 0)
            assert c.frames == [] and c.stacks == [] and c.values == {} and c.truncated == 0
            assert sorted(c.thread_idents()) == sorted(t.ident for t in threads)
        # reversed order: B now takes stack 0, A overflows
        reordered = {t.ident: frames[t.ident] for t in threads[::-1]}
        assert collect(collectors, reordered, T0 + 25 * MS) == [2, 2]
        frames_table, stacks, values, truncated = collectors[0].take()
        assert named(frames_table, stacks) == [expected(B, 1), [TRUNCATED]]
        # threads kept their last visit: wall is the time since then, not cycle_ns
        assert values == {(0, "b"): [1, 0, 25 * MS], (1, "a"): [1, 0, 25 * MS]}
        assert truncated == 1
        # tables handed out by take() are not touched by later windows
        assert [(list(t[0]), list(t[1]), dict(t[2]), t[3]) for t in taken] == kept


# -- cpu mode: threads on CPU at the instant, weights calibrated per thread ----------


def waked_twins(max_stacks: int = 1000, max_depth: int = 128) -> tuple[list[Any], list[Any]]:
    """Collector twins in cpu mode, each with its own waker twin."""
    wakers = [WAKE_CY.Waker(1), WAKE_PY.Waker(1)]
    collectors = [CY.Collector(max_stacks, max_depth, False, wakers[0]),
                  PY.Collector(max_stacks, max_depth, False, wakers[1])]
    return collectors, wakers


def observe(wakers: list[Any], now: int, first: list[int] | None,
            second: list[int] | None = None, other: int = -1) -> list[int]:
    """The same instant in both wakers; they must agree on everything they saw."""
    on = [w.observe(now, first, second, other) for w in wakers]
    assert on[0] == on[1]
    for name in ("on_cpu_mask", "windows"):
        assert getattr(wakers[0], name)() == getattr(wakers[1], name)()
    for name in ("period_ns", "gone", "unknown_ns", "wake_ns", "wakes"):
        assert getattr(wakers[0], name) == getattr(wakers[1], name), name
    return on


def cpu_collect(collectors: list[Any], frames: dict[int, FrameType], now: int) -> list[int]:
    taken = [c.collect(frames, now, 10 * MS, True) for c in collectors]
    assert taken[0] == taken[1]
    assert_identical(collectors)
    return taken


def registered_fake(collectors: list[Any], idents: list[int], labels: list[Any]) -> None:
    """Threads whose native ids have no clock (gone long ago): every reading comes
    from observe(), so both twins see the same numbers."""
    for collector in collectors:
        for i, (ident, label) in enumerate(zip(idents, labels, strict=True)):
            collector.set_thread(ident, 2**22 - 1 - i, label)


def started_twins(idents: list[int], labels: list[Any]) -> tuple[list[Any], list[Any]]:
    """Cpu-mode twins watching ``idents`` (fake clocks), baselines read at T0 + 1 ms."""
    collectors, wakers = waked_twins()
    registered_fake(collectors, idents, labels)
    for w in wakers:
        w.begin(T0, 10 * MS)
    zeros = [0] * len(idents)
    observe(wakers, T0 + 1 * MS, zeros, zeros)
    return collectors, wakers


def test_distribute_is_exact_and_the_same_in_both_twins() -> None:
    for total, weights in [(10, [1, 1, 1]), (0, [5, 0, 7]), (7, [0, 0, 3]),
                           (10**13, [10**10, 3, 10**9 + 7]), (999_999_937, [2, 3, 5, 7, 11])]:
        parts = CY.distribute(total, weights)
        assert parts == PY.distribute(total, weights)
        assert sum(parts) == total
        whole = sum(weights)
        assert all(abs(p - total * w / whole) < 1 + 1e-6 * total for p, w in zip(
            parts, weights, strict=True))
        assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)


def test_cpu_mode_samples_only_threads_on_cpu_at_the_instant() -> None:
    la, lb = (("t", "a"),), (("t", "b"),)
    with parked((recurse_a, (2,)), (recurse_b, (3,))) as threads:
        frames = frames_of(threads)
        collectors, wakers = waked_twins()
        registered_fake(collectors, [t.ident or 0 for t in threads], [la, lb])
        for w in wakers:
            w.begin(T0, 10 * MS)
        # baselines: a first reading is never a sample
        assert observe(wakers, T0 + 10 * MS, [1_000, 5_000], [1_000, 5_000]) == [0, 0]
        assert cpu_collect(collectors, frames, T0 + 10 * MS) == [0, 0]
        # a used CPU and was still running at the instant; b used CPU, then stopped
        assert observe(wakers, T0 + 20 * MS, [4_000_000, 900_000],
                       [4_000_300, 900_000]) == [1, 1]
        assert [w.on_cpu_mask() for w in wakers] == [b"\x01\x00"] * 2
        assert cpu_collect(collectors, frames, T0 + 20 * MS) == [1, 1]
        # one pass (no second reading): every thread whose clock moved counts
        assert observe(wakers, T0 + 32 * MS, [6_000_000, 2_000_000]) == [2, 2]
        assert cpu_collect(collectors, frames, T0 + 32 * MS) == [2, 2]
        # nothing moved
        assert observe(wakers, T0 + 40 * MS, [6_000_000, 2_000_000],
                       [6_000_000, 2_000_000]) == [0, 0]
        assert cpu_collect(collectors, frames, T0 + 40 * MS) == [0, 0]
        tables = [c.take() for c in collectors]
    assert tables[0] == tables[1]
    frames_table, stacks, values, _ = tables[0]
    assert named(frames_table, stacks) == [expected(A, 2), expected(B, 3)]
    # each thread's CPU is what its clock measured since its baseline
    assert values == {(0, la): [2, 6_000_000 - 1_000, 10 * MS + 12 * MS],
                      (1, lb): [1, 2_000_000 - 5_000, 10 * MS]}
    assert [w.windows() for w in wakers] == [[0, 0]] * 2  # taken with the window


def test_calibration_shares_a_threads_cpu_by_period_weights() -> None:
    label = (("t", "x"),)
    with parked((recurse_a, (2,)), (recurse_b, (1,))) as threads:
        here, there = (frames_of([t])[t.ident or 0] for t in threads)
        ident = threads[0].ident or 0
        collectors, wakers = started_twins([ident], [label])
        # the same thread seen in two places, after periods of 4, 6 and 5 ms
        clock = 0
        for now, frame in ((T0 + 5 * MS, here), (T0 + 11 * MS, there), (T0 + 16 * MS, here)):
            clock += 3_000_001
            observe(wakers, now, [clock], [clock + 1])
            clock += 1
            assert cpu_collect(collectors, {ident: frame}, now) == [1, 1]
        # the open window already shows calibrated CPU, and reading it changes nothing
        snapshots = [c.snapshot() for c in collectors]
        assert snapshots[0] == snapshots[1]
        taken = [c.take() for c in collectors]
    assert taken[0] == taken[1]
    assert snapshots[0][2] == taken[0][2]
    values = taken[0][2]
    total = 3 * 3_000_002
    # weights 4 + 5 ms for the first stack, 6 ms for the second: 9/15 and 6/15 of it
    # wall: the first sample the cycle (10 ms), then the time since the last sample
    assert values == {(0, label): [2, total * 9 // 15, 10 * MS + 5 * MS],
                      (1, label): [1, total - total * 9 // 15, 6 * MS]}


def test_cpu_of_a_window_without_samples_waits_one_window_then_is_unattributed() -> None:
    label = (("t", "x"),)
    with parked((recurse_a, (1,))) as threads:
        frames = frames_of(threads)
        ident = threads[0].ident or 0
        collectors, wakers = started_twins([ident], [label])
        # window 1: 5 ms of CPU, never on CPU at an instant
        observe(wakers, T0 + 10 * MS, [5_000_000], [5_000_000])
        assert cpu_collect(collectors, frames, T0 + 10 * MS) == [0, 0]
        assert [c.take()[2] for c in collectors] == [{}, {}]
        # window 2: 1 ms more, and one sample: it carries both windows' CPU
        observe(wakers, T0 + 20 * MS, [5_900_000], [6_000_000])
        assert cpu_collect(collectors, frames, T0 + 20 * MS) == [1, 1]
        assert [c.take()[2] for c in collectors] == [{(0, label): [1, 6_000_000, 10 * MS]}] * 2
        # windows 3 and 4 without samples: window 3's CPU is given up after window 4
        observe(wakers, T0 + 30 * MS, [7_000_000], [7_000_000])
        assert [c.take()[2] for c in collectors] == [{}, {}]
        observe(wakers, T0 + 40 * MS, [7_500_000], [7_500_000])
        assert [c.take()[2] for c in collectors] == [{}, {}]
        assert [c.unattributed for c in collectors] == [1_000_000] * 2
        # a thread dropped with CPU it could not place counts it as unattributed too
        for c in collectors:
            c.drop_thread(ident)
        assert [c.unattributed for c in collectors] == [1_500_000] * 2
        assert [w.windows() for w in wakers] == [[], []]


def test_dropping_a_thread_settles_its_cpu_in_the_open_window() -> None:
    label = (("t", "x"),)
    with parked((recurse_a, (1,)), (recurse_b, (1,))) as threads:
        frames = frames_of(threads)
        idents = [t.ident or 0 for t in threads]
        collectors, wakers = waked_twins()
        registered_fake(collectors, idents, [label, label])
        for w in wakers:
            w.begin(T0, 10 * MS)
        observe(wakers, T0 + 1 * MS, [0, 0], [0, 0])
        observe(wakers, T0 + 10 * MS, [2_000_000, 3_000_000], [2_000_001, 3_000_001])
        assert cpu_collect(collectors, frames, T0 + 10 * MS) == [2, 2]
        for c in collectors:
            c.drop_thread(idents[0])  # exited: its share goes to its row now
        # its slot is free; a new thread takes it with a fresh baseline
        for c in collectors:
            c.set_thread(12345, 2**22 - 9, label)
        assert observe(wakers, T0 + 20 * MS, [7_000_000, 3_000_001],
                       [7_000_900, 3_000_001]) == [0, 0]  # a first reading: its baseline
        observe(wakers, T0 + 30 * MS, [7_000_400, 3_000_001], [7_000_500, 3_000_001])
        assert cpu_collect(collectors, {12345: frames[idents[1]]}, T0 + 30 * MS) == [1, 1]
        taken = [c.take() for c in collectors]
    assert taken[0] == taken[1]
    # the new thread was seen in the second thread's stack: that row has both
    assert taken[0][2] == {(0, label): [1, 2_000_001, 10 * MS],
                           (1, label): [2, 3_000_001 + 500, 20 * MS]}


def test_never_sampled_threads_are_watched_and_gone_threads_counted() -> None:
    with parked((recurse_a, (1,)), (recurse_b, (1,))) as threads:
        frames = frames_of(threads)
        collectors, wakers = started_twins([t.ident or 0 for t in threads], [None, "b"])
        # ember's own thread ran (its CPU is watched), the other is gone
        assert observe(wakers, T0 + 10 * MS, [4_000, -1], [5_000, -1],
                       other=9_000) == [0, 0]
        assert [w.gone for w in wakers] == [1, 1]
        # (its later reading counts: 5,000 ns, of the 9,000 the process used)
        assert [w.unknown_ns for w in wakers] == [9_000 - 5_000] * 2
        assert cpu_collect(collectors, frames, T0 + 10 * MS) == [0, 0]
        assert [c.gone for c in collectors] == [1, 1]
        # a quiet process: no clock read, nobody on CPU, nothing counted
        assert observe(wakers, T0 + 20 * MS, None, other=500) == [0, 0]
        assert [w.windows() for w in wakers] == [[5_000, 0]] * 2


def test_cpu_mode_needs_a_waker_and_wall_mode_does_not() -> None:
    with parked((recurse_a, (1,))) as threads:
        frames = frames_of(threads)
        for collector in twins():
            collector.set_thread(threads[0].ident, threads[0].native_id, "x")
            with pytest.raises(ValueError, match="waker"):
                collector.collect(frames, T0, MS, True)
            assert collector.collect(frames, T0, MS, False) == 1


# -- thread_cpu_ns / clock_id -----------------------------------------------------


def wait_until_gone(native_id: int) -> None:
    """After join() the kernel thread may still be exiting for a moment."""
    deadline = time.monotonic() + 10
    while PY.thread_cpu_ns(native_id) != -1:
        assert time.monotonic() < deadline, "thread still has a CPU clock"
        time.sleep(0.001)


def test_clock_id_agrees_between_twins() -> None:
    ids = [1, 2, 7, 4096, 4_194_304, threading.get_native_id()]
    for native_id in ids:
        assert CY.clock_id(native_id) == PY.clock_id(native_id) == ((~native_id) << 3) | 6
    # it is the kernel's per-thread CPU clock: the current thread's clock is readable
    own = CY.clock_id(threading.get_native_id())
    assert time.clock_gettime_ns(own) > 0


def test_thread_cpu_ns_of_current_thread(capture: ModuleType) -> None:
    native = threading.get_native_id()
    sum(range(100_000))  # burn a little CPU
    before = time.thread_time_ns()
    value = capture.thread_cpu_ns(native)
    after = time.thread_time_ns()
    assert 0 < before <= value <= after


def test_thread_cpu_ns_of_blocked_thread_same_in_both() -> None:
    with parked((recurse_a, (1,))) as threads:
        native = threads[0].native_id
        values = [CY.thread_cpu_ns(native), PY.thread_cpu_ns(native), CY.thread_cpu_ns(native)]
    assert values[0] > 0
    assert values[0] == values[1] == values[2]


def test_thread_cpu_ns_of_exited_thread_is_minus_one(capture: ModuleType) -> None:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(threading.get_native_id()))
    thread.start()
    thread.join(10)
    assert seen == [thread.native_id]
    wait_until_gone(seen[0])
    assert capture.thread_cpu_ns(seen[0]) == -1
    assert CY.thread_cpu_ns(seen[0]) == PY.thread_cpu_ns(seen[0]) == -1


@pytest.mark.parametrize("native_id", [0, -1])
def test_thread_without_native_id_sampled_in_wall_mode_only(native_id: int) -> None:
    # threads without a kernel id (native_id 0) are still sampled in wall mode
    with parked((recurse_a, (1,))) as threads:
        frames = frames_of(threads)
        collectors, wakers = waked_twins()
        for c in collectors:
            c.set_thread(threads[0].ident, native_id, "x")
        assert [w.windows() for w in wakers] == [[], []]  # no clock to watch
        assert collect(collectors, frames, T0) == [1, 1]
        observe(wakers, T0 + MS, [])
        assert cpu_collect(collectors, frames, T0 + MS) == [0, 0]
        assert collectors[0].snapshot()[2] == {(0, "x"): [1, 0, 10 * MS]}


# -- cycle(): sys._current_frames() and the sampling in one call --------------------
def register_others(collectors: list[Any], threads: list[threading.Thread]) -> None:
    """Every other thread of this process (pytest's, leftovers) as never sampled."""
    own = {t.ident for t in threads} | {threading.get_ident()}
    for collector in collectors:
        for ident in sys._current_frames():
            if ident not in own:
                collector.set_thread(ident, 0, None)


def test_cycle_samples_like_collect_and_defers_when_threads_changed() -> None:
    me = threading.get_ident()
    with parked((recurse_a, (3,)), (recurse_b, (5,))) as threads:
        collectors = twins()
        register(collectors, threads, [(("t", "a"),), (("t", "b"),)])
        register_others(collectors, threads)
        # Not watching yet: nothing sampled, the frames wait for the caller once.
        assert [c.cycle(T0, 10 * MS, me) for c in collectors] == [-1, -1]
        for collector in collectors:
            pending = collector.take_pending()
            assert pending is not None and me not in pending
            assert {t.ident for t in threads} <= set(pending)
            assert collector.take_pending() is None
        assert_identical(collectors)
        assert [c.snapshot()[2] for c in collectors] == [{}, {}]

        active: dict[int, Any] = {1: "a thread"}
        for collector in collectors:
            collector.watch(active, False, 1000)
        assert [c.cycle(T0, 10 * MS, me) for c in collectors] == [2, 2]
        assert [c.take_pending() for c in collectors] == [None, None]
        assert_identical(collectors)
        frames, stacks, values, _ = collectors[0].snapshot()
        assert sorted(named(frames, [stacks[sid] for sid, _ in values])) == sorted(
            [expected(frame_of(recurse_a.__code__), 3), expected(frame_of(recurse_b.__code__), 5)])
        assert sorted(values.values()) == [[1, 0, 10 * MS]] * 2

        # A thread started or exited since the snapshot: the caller registers first.
        active[2] = "another thread"
        assert [c.cycle(T0 + MS, MS, me) for c in collectors] == [-1, -1]
        assert all(c.take_pending() for c in collectors)
        for collector in collectors:
            collector.watch(active, False, 1)  # more threads than max_threads: the caller picks
        assert [c.cycle(T0 + MS, MS, me) for c in collectors] == [-1, -1]
        assert all(c.take_pending() for c in collectors)
        assert_identical(collectors)
        assert sorted(collectors[0].snapshot()[2].values()) == [[1, 0, 10 * MS]] * 2

        for collector in collectors:
            collector.watch(active, False, 1000)
            collector.stopping = True  # stop() is under way: take nothing
        assert [c.cycle(T0 + 2 * MS, MS, me) for c in collectors] == [0, 0]
        assert [c.take_pending() for c in collectors] == [None, None]
        for collector in collectors:
            collector.stopping = False
        assert [c.cycle(T0 + 2 * MS, 2 * MS, me) for c in collectors] == [2, 2]
        assert_identical(collectors)
        assert sorted(collectors[0].snapshot()[2].values()) == [[2, 0, 12 * MS]] * 2


def test_cycle_leaves_missing_threads_pending_and_restores_the_gc() -> None:
    import gc

    me = threading.get_ident()
    with parked((recurse_a, (2,)), (recurse_b, (2,))) as threads:
        collectors = twins()
        register(collectors, threads[:1], [(("t", "a"),)])  # the second is unknown
        register_others(collectors, threads)
        for collector in collectors:
            collector.watch({}, False, 1000)
        for enabled in (True, False):
            gc.enable() if enabled else gc.disable()
            try:
                assert [c.cycle(T0, 10 * MS, me) for c in collectors] == [1, 1]
                assert gc.isenabled() is enabled
            finally:
                gc.enable()
            assert [c.missing for c in collectors] == [1, 1]
            for collector in collectors:
                pending = collector.take_pending()
                assert pending is not None and threads[1].ident in pending
        assert_identical(collectors)
