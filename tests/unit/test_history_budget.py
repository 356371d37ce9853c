"""The sampler's in-memory history within its byte budget: each window's size
estimate against tracemalloc, the oldest windows dropped beyond the budget, a
window too big alone trimmed to its heaviest stacks, and the sampler keeping
``max_history_bytes`` (windows built from realistic deep stacks by the real
collectors, with ``benchmarks/history_memory.py``'s functions)."""

from __future__ import annotations

import importlib.util
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ember import Sampler, _impl
from ember.window import History, Window, estimate_bytes
from sampling import FakeClock, by_thread

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "history_memory.py"
MIB = 1 << 20


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/history_memory.py, imported from its file (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("ember_benchmark_history", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def functions(bench: ModuleType) -> list[Any]:
    return list(bench.make_functions())


@pytest.fixture(autouse=True)
def imported(implementation: str) -> None:
    """The collector's module imported before anything is measured."""
    _impl.module("capture", implementation)


def make_window(bench: ModuleType, functions: list[Any], implementation: str, stacks: int,
                depth: int, seed: int = 0) -> Window:
    window: Window = bench.window(_impl.module("capture", implementation), functions, stacks,
                                  depth, seed)
    return window


def fresh(implementation: str) -> bool:
    return implementation == "cython"


@pytest.mark.parametrize(("stacks", "depth"), [(300, 8), (2_000, 60), (400, 250)])
def test_estimate_is_what_tracemalloc_counts_plus_the_rounding(
        bench: ModuleType, functions: list[Any], implementation: str, stacks: int,
        depth: int) -> None:
    window, held = bench.measured(
        lambda: make_window(bench, functions, implementation, stacks, depth))
    assert len(window.stacks) == stacks
    estimate = estimate_bytes(window.frames, window.stacks, window.values,
                              fresh_ids=fresh(implementation))
    # tracemalloc counts the bytes asked for; the allocator rounds them up
    assert held <= estimate <= 1.25 * held, (estimate, held, estimate / held)


def test_the_oldest_windows_leave_beyond_the_budget(
        bench: ModuleType, functions: list[Any], implementation: str) -> None:
    budget = 2 * MIB
    history = History(360, budget, fresh_ids=fresh(implementation))
    sealed = []

    def seal() -> None:
        for seed in range(12):
            window = make_window(bench, functions, implementation, 800, 40, seed)
            sealed.append(window.meta)
            history.append(window)

    _, held = bench.measured(seal)
    kept = list(history)
    assert 1 < len(kept) < 12
    assert [w.meta for w in kept] == sealed[-len(kept):]  # the newest stay, in order
    assert history.dropped == 12 - len(kept)
    assert history.nbytes == sum(w.nbytes for w in kept) <= budget
    assert held <= budget  # what the held windows really take
    assert held > budget / 2  # ... and the budget is used, not wasted


def heavy_window(bench: ModuleType, functions: list[Any], implementation: str) -> Window:
    """4,000 stacks 60 deep (about 4 MiB), 20 of which have many more samples."""
    window = make_window(bench, functions, implementation, 4_000, 60)
    for (sid, _labels), row in window.values.items():
        if sid % 199 == 7:
            row[0] += 1000
    return window


def handlers(window: Window, stack: tuple[int, ...]) -> tuple[str, ...]:
    """The benchmark's functions on ``stack`` (its callers differ from call to call)."""
    names = (window.frames[fid][0] for fid in stack)
    return tuple(name for name in names if name.startswith("handler_"))


def test_a_window_too_big_alone_keeps_its_heaviest_stacks(
        bench: ModuleType, functions: list[Any], implementation: str) -> None:
    original = heavy_window(bench, functions, implementation)
    heavy = {handlers(original, original.stacks[sid])
             for sid in range(7, len(original.stacks), 199)}
    budget = MIB
    assert estimate_bytes(original.frames, original.stacks, original.values,
                          fresh_ids=fresh(implementation)) > 3 * budget

    def seal() -> History:
        history = History(360, budget, fresh_ids=fresh(implementation))
        history.append(heavy_window(bench, functions, implementation))
        return history

    history, held = bench.measured(seal)  # the same window, trimmed as it is sealed
    assert held <= budget
    (kept,) = list(history)
    assert 0 < kept.nbytes <= budget
    assert kept.nbytes == estimate_bytes(kept.frames, kept.stacks, kept.values, fresh_ids=False)
    assert held <= kept.nbytes <= 1.25 * held
    before, after = original.profile(), kept.profile()
    assert after.totals() == before.totals()  # nothing lost: the rest is [truncated]
    truncated = sum(v.samples for stack, _l, v in after.samples()
                    if stack[-1].name == "[truncated]")
    assert kept.meta.truncated == truncated
    assert 0 < truncated < before.totals().samples
    assert heavy <= {handlers(kept, stack) for stack in kept.stacks}
    assert len(kept.stacks) < len(original.stacks) / 3
    # the frames no kept stack uses are gone
    assert len({fid for stack in kept.stacks for fid in stack}) == len(kept.frames)


# -- the sampler ---------------------------------------------------------------------


def _park(depth: int, release: threading.Event) -> None:
    if depth > 0:
        _park(depth - 1, release)
    else:
        release.wait()


@pytest.fixture
def deep_threads() -> Iterator[list[threading.Thread]]:
    """40 threads parked at distinct stacks 100 to 139 frames deep."""
    release = threading.Event()
    threads = [threading.Thread(target=_park, args=(100 + i, release), name=f"deep-{i}")
               for i in range(40)]
    for thread in threads:
        thread.start()
    yield threads
    release.set()
    for thread in threads:
        thread.join()


def seal_windows(implementation: str, count: int, **settings: Any) -> Sampler:
    clock = FakeClock()
    sampler = Sampler(implementation=implementation, mode="wall", rate=100, window=1.0,
                      clock=clock, rng=random.Random(0), **settings)
    for _ in range(count * 4):
        clock.advance(0.25)
        sampler.sample_once()
    return sampler


def test_the_sampler_keeps_max_history_bytes(
        implementation: str, deep_threads: list[threading.Thread]) -> None:
    unbounded = seal_windows(implementation, 40)
    assert len(unbounded.windows()) == 40
    per_window = unbounded.windows()[-1].nbytes
    assert per_window > 40 * 100 * 8  # 40 stacks of 100+ frames
    sampler = seal_windows(implementation, 40, max_history_bytes=MIB)
    windows = sampler.windows()
    assert MIB // per_window - 1 <= len(windows) <= MIB // per_window
    assert sampler.stats()["history_bytes"] == sum(w.nbytes for w in windows) <= MIB
    assert [w.meta.start for w in windows] == sorted(w.meta.start for w in windows)
    # the windows held are whole: every parked thread, sampled 4 times a window
    assert by_thread(windows[-1].profile())[deep_threads[0].name].samples == 4
    profile = sampler.stop()
    assert profile.totals().samples == sum(w.profile().totals().samples
                                           for w in sampler.windows())
