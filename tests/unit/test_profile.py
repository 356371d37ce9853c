"""The Profile model: building, merging, filtering, rankings and equality."""

from __future__ import annotations

import pytest

from ember import Frame, Metadata, Profile, make_labels, merge

A = Frame("a", "app.py", 1)
B = Frame("b", "app.py", 10)
C = Frame("c", "lib.py", 5)
GET = make_labels({"endpoint": "GET /", "thread": "MainThread"})
POST = make_labels({"endpoint": "POST /x", "thread": "MainThread"})


def sample_profile() -> Profile:
    p = Profile(Metadata(start=100.0, duration=10.0, period=0.01, pids=(1,), host="h"))
    p.add([A, B], samples=3, cpu_ns=30, wall_ns=300, labels=GET)
    p.add([A, B, C], samples=5, cpu_ns=50, wall_ns=500, labels=GET)
    p.add([A, C], samples=2, cpu_ns=20, wall_ns=200, labels=POST)
    p.add([A, B], samples=1, cpu_ns=10, wall_ns=100, labels=POST)
    return p


def test_interning_reuses_frames_and_stacks() -> None:
    p = sample_profile()
    assert p.frames == [A, B, C]
    assert len(p.stacks) == 3  # (A,B), (A,B,C), (A,C)
    p.add([A, B], samples=1, labels=GET)
    assert len(p.stacks) == 3
    assert p.values[(p.stack_id((0, 1)), GET)].samples == 4


def test_totals_and_labels() -> None:
    p = sample_profile()
    assert p.totals().astuple() == (11, 110, 1100)
    assert p.label_values("endpoint") == {"GET /", "POST /x"}


def test_top_functions_self_and_total() -> None:
    p = sample_profile()
    by_self = p.top_functions(by="self")
    assert [(s.frame, s.self_value, s.total_value) for s in by_self] == [
        (C, 7, 7), (B, 4, 9), (A, 0, 11)]
    by_total = p.top_functions(by="total", value="cpu_ns")
    assert [s.frame for s in by_total] == [A, B, C]
    assert by_total[0].total_value == 110
    assert len(p.top_functions(n=1)) == 1
    with pytest.raises(ValueError):
        p.top_functions(by="nope")
    with pytest.raises(ValueError):
        p.top_functions(value="bytes")


def test_recursion_counts_once_in_total() -> None:
    p = Profile()
    p.add([A, B, A, B], samples=4)
    stats = {s.frame: s for s in p.top_functions(by="total")}
    assert stats[A].total_value == 4
    assert stats[B].self_value == 4


def test_top_paths() -> None:
    p = sample_profile()
    paths = p.top_paths()
    assert paths[0] == ((A, B, C), 5)
    assert paths[1] == ((A, B), 4)  # summed over labels
    assert paths[2] == ((A, C), 2)


def test_filter_by_label() -> None:
    p = sample_profile()
    get = p.filter(endpoint="GET /")
    assert get.totals().samples == 8
    assert get.label_values("endpoint") == {"GET /"}
    assert p.filter(endpoint="nope").totals().samples == 0
    assert p.filter(thread="MainThread").totals().samples == 11


def test_merge_sums_and_combines_metadata() -> None:
    p1 = sample_profile()
    p2 = Profile(Metadata(start=105.0, duration=10.0, period=0.01, pids=(2,), host="h",
                          gc={0: (3, 0.5)}))
    p2.add([C, A], samples=7, labels=GET)
    p2.add([A, B], samples=2, cpu_ns=1, wall_ns=2, labels=GET)
    m = p1.merge(p2)
    assert m.totals().samples == 20
    assert m.canonical()[((A, B), GET)] == (5, 31, 302)
    assert m.meta.start == 100.0
    assert m.meta.duration == 15.0
    assert m.meta.pids == (1, 2)
    assert m.meta.host == "h"
    assert m.meta.gc == {0: (3, 0.5)}
    assert merge([p1]) == p1


def test_equality_ignores_table_order() -> None:
    p1 = sample_profile()
    p2 = Profile(Metadata(start=100.0, duration=10.0, period=0.01, pids=(1,), host="h"))
    p2.add([A, B], samples=1, cpu_ns=10, wall_ns=100, labels=POST)  # other order
    p2.add([A, C], samples=2, cpu_ns=20, wall_ns=200, labels=POST)
    p2.add([A, B, C], samples=5, cpu_ns=50, wall_ns=500, labels=GET)
    p2.add([A, B], samples=3, cpu_ns=30, wall_ns=300, labels=GET)
    assert p1 == p2
    p2.add([A], samples=1)
    assert p1 != p2
    p3 = sample_profile()
    p3.meta.host = "other"
    assert p1 != p3


def test_from_tables_dedupes_frames_by_value() -> None:
    frames = [("a", "app.py", 1), ("a", "app.py", 1), ("b", "app.py", 10)]
    stacks = [(0, 2), (1, 2)]
    values = {(0, ()): [1, 2, 3], (1, ()): [4, 5, 6]}
    p = Profile.from_tables(frames, stacks, values)
    assert p.frames == [A, B]
    assert p.canonical() == {((A, B), ()): (5, 7, 9)}


def test_trim_roots_drops_launcher_frames_only_at_the_root() -> None:
    launcher = Frame("run", "launcher.py", 1)
    p = Profile()
    p.add([launcher, launcher, A, launcher], samples=2)
    p.add([launcher], samples=1)
    trimmed = p.trim_roots(lambda f: f.file == "launcher.py")
    assert trimmed.canonical() == {((A, launcher), ()): (2, 0, 0), ((launcher,), ()): (1, 0, 0)}


def test_frame_render() -> None:
    assert A.render() == "a (app.py:1)"
    assert Frame("bare").render() == "bare"
