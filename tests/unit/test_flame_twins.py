"""The flame-tree twins (``ember._flame`` and ``ember._flame_py``): known trees,
a brute-force reference, errors, and both twins fed the same random and
real-size inputs.

See ``ember._flame_py`` for the contract: preorder nodes, node 0 the root,
children merged by frame id and ordered by rank (ties by frame id), laid out
from the parent's left edge, ``inverted`` folds leaf first, nodes below the
minimum are elided whole.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember import _impl

CYTHON = _impl.module("flame", "cython")
PYTHON = _impl.module("flame", "python")


@pytest.fixture
def flame(implementation: str) -> ModuleType:
    return _impl.module("flame", implementation)


def reference(
    stacks: Sequence[Sequence[int]], weights: Sequence[int], inverted: bool = False
) -> tuple[dict[tuple[int, ...], int], dict[tuple[int, ...], int]]:
    """(total, self) per path, brute force."""
    total: dict[tuple[int, ...], int] = {(): 0}
    own: dict[tuple[int, ...], int] = {}
    for stack, w in zip(stacks, weights, strict=True):
        if not w:
            continue
        path = tuple(reversed(stack)) if inverted else tuple(stack)
        for d in range(len(path) + 1):
            total[path[:d]] = total.get(path[:d], 0) + w
        own[path] = own.get(path, 0) + w
    return total, own


def paths(frames: Sequence[int], depths: Sequence[int]) -> list[tuple[int, ...]]:
    """The root-first path of every preorder node (the root's is ())."""
    out: list[tuple[int, ...]] = []
    current: list[int] = []
    for f, d in zip(frames, depths, strict=True):
        if d == 0:
            out.append(())
            continue
        del current[d - 1:]
        current.append(f)
        out.append(tuple(current))
    return out


def check_layout(tree: object, stacks: Sequence[Sequence[int]], weights: Sequence[int],
                 rank: Sequence[int], inverted: bool) -> None:
    frames: list[int] = tree.frames  # type: ignore[attr-defined]
    depths: list[int] = tree.depths  # type: ignore[attr-defined]
    starts: list[int] = tree.starts  # type: ignore[attr-defined]
    totals: list[int] = tree.totals  # type: ignore[attr-defined]
    selfs: list[int] = tree.selfs  # type: ignore[attr-defined]
    elided: int = tree.elided  # type: ignore[attr-defined]
    total, own = reference(stacks, weights, inverted)
    node_paths = paths(frames, depths)
    assert node_paths[0] == () and frames[0] == -1 and starts[0] == 0
    assert elided == 0
    assert sorted(node_paths) == sorted(total)  # every path once, nothing else
    for i, p in enumerate(node_paths):
        assert totals[i] == total[p]
        assert selfs[i] == own.get(p, 0)
    # children start at the parent's left edge, in rank order, back to back
    by_path = {p: i for i, p in enumerate(node_paths)}
    for i, p in enumerate(node_paths):
        kids = sorted((q for q in node_paths if len(q) == len(p) + 1 and q[:-1] == p),
                      key=lambda q: (rank[q[-1]], q[-1]))
        x = starts[i]
        for q in kids:
            assert starts[by_path[q]] == x
            x += totals[by_path[q]]
        assert x + selfs[i] == starts[i] + totals[i]
    # preorder: every node follows its parent
    for i, p in enumerate(node_paths[1:], 1):
        assert by_path[p[:-1]] < i


def test_known_tree(flame: ModuleType) -> None:
    stacks = [(0, 1, 2), (0, 1), (0, 3), (), (3,)]
    tree = flame.fold(stacks, [3, 2, 1, 4, 5], [0, 1, 2, 3])
    assert tuple(tree) == (
        [-1, 0, 1, 2, 3, 3], [0, 1, 2, 3, 2, 1], [0, 0, 0, 0, 5, 6],
        [15, 6, 5, 3, 1, 5], [4, 0, 2, 3, 1, 5], 0,
    )
    assert tree.totals[0] == 15 and tree.elided == 0


def test_rank_orders_siblings_and_ties_go_by_frame_id(flame: ModuleType) -> None:
    stacks = [(0,), (1,), (2,)]
    tree = flame.fold(stacks, [1, 2, 4], [5, 1, 1])
    assert tree.frames == [-1, 1, 2, 0]
    assert tree.starts == [0, 0, 2, 6]


def test_inverted_folds_leaf_first(flame: ModuleType) -> None:
    stacks = [(0, 1, 2), (3, 2), (0, 1)]
    tree = flame.fold(stacks, [3, 2, 1], [0, 1, 2, 3], inverted=True)
    check_layout(tree, stacks, [3, 2, 1], [0, 1, 2, 3], True)
    assert [f for f, d in zip(tree.frames, tree.depths, strict=True) if d == 1] == [1, 2]


def test_min_total_elides_whole_subtrees(flame: ModuleType) -> None:
    stacks = [(0, 1), (0, 2, 3), (4,)]
    tree = flame.fold(stacks, [10, 2, 1], [0, 1, 2, 3, 4], min_total=2)
    assert tree.frames == [-1, 0, 1, 2, 3]  # (4,) weighs 1: elided
    assert tree.totals == [13, 12, 10, 2, 2]
    assert tree.starts == [0, 0, 0, 10, 10]
    assert tree.elided == 1
    tree = flame.fold(stacks, [10, 2, 1], [0, 1, 2, 3, 4], min_total=3)
    assert tree.frames == [-1, 0, 1] and tree.elided == 3  # (0, 2) goes with its child


def test_zero_weights_and_empty_input(flame: ModuleType) -> None:
    assert tuple(flame.fold([], [], [])) == ([-1], [0], [0], [0], [0], 0)
    tree = flame.fold([(0,), (1,)], [0, 3], [0, 1])
    assert tree.frames == [-1, 1] and tree.totals == [3, 3]


def test_diff_tree_has_both_weights(flame: ModuleType) -> None:
    stacks = [(0, 1, 2), (0, 1), (0, 3)]
    tree = flame.fold_diff(stacks, [3, 0, 1], [1, 2, 0], [0, 1, 2, 3])
    assert tree.frames == [-1, 0, 1, 2, 3]
    assert tree.base_totals == [4, 4, 3, 3, 1]
    assert tree.head_totals == [3, 3, 3, 1, 0]
    assert tree.base_selfs == [0, 0, 0, 3, 1]
    assert tree.head_selfs == [0, 0, 2, 1, 0]
    assert tree.base_starts == [0, 0, 0, 0, 3]
    assert tree.head_starts == [0, 0, 0, 0, 3]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([(0,)], [-1], [0]), ValueError),
        (([(0,)], [1, 2], [0]), ValueError),
        (([(3,)], [1], [0]), ValueError),
        (([(-1,)], [1], [0]), ValueError),
        (([(0,)], [1 << 63], [0]), OverflowError),
    ],
)
def test_errors_are_the_same(args: tuple[object, ...], error: type[Exception]) -> None:
    messages = []
    for module in (CYTHON, PYTHON):
        with pytest.raises(error) as info:
            module.fold(*args)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


stacks_strategy = st.lists(st.lists(st.integers(0, 5), max_size=7).map(tuple), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    stacks=stacks_strategy,
    data=st.data(),
    inverted=st.booleans(),
)
def test_twins_agree_and_match_the_reference(
    stacks: list[tuple[int, ...]], data: st.DataObject, inverted: bool
) -> None:
    weights = data.draw(st.lists(st.integers(0, 1000), min_size=len(stacks),
                                 max_size=len(stacks)))
    head = data.draw(st.lists(st.integers(0, 1000), min_size=len(stacks),
                              max_size=len(stacks)))
    rank = data.draw(st.lists(st.integers(0, 3), min_size=6, max_size=6))
    min_total = data.draw(st.integers(0, 300))
    full_c = CYTHON.fold(stacks, weights, rank, inverted)
    full_p = PYTHON.fold(stacks, weights, rank, inverted)
    assert tuple(full_c) == tuple(full_p)
    check_layout(full_c, stacks, weights, rank, inverted)
    cut_c = CYTHON.fold(stacks, weights, rank, inverted, min_total)
    assert tuple(cut_c) == tuple(PYTHON.fold(stacks, weights, rank, inverted, min_total))
    # elision keeps exactly the nodes at or above the minimum, offsets unchanged
    kept = [i for i, t in enumerate(full_c.totals) if i == 0 or t >= min_total]
    assert cut_c.frames == [full_c.frames[i] for i in kept]
    assert cut_c.starts == [full_c.starts[i] for i in kept]
    assert cut_c.elided == len(full_c.frames) - len(kept)
    diff_c = CYTHON.fold_diff(stacks, weights, head, rank, inverted, min_total, min_total)
    diff_p = PYTHON.fold_diff(stacks, weights, head, rank, inverted, min_total, min_total)
    assert tuple(diff_c) == tuple(diff_p)
    both = [a + b for a, b in zip(weights, head, strict=True)]
    total_b, _ = reference(stacks, weights, inverted)
    total_h, _ = reference(stacks, head, inverted)
    full_d = CYTHON.fold_diff(stacks, weights, head, rank, inverted)
    assert full_d.frames == CYTHON.fold(stacks, both, rank, inverted).frames
    for i, p in enumerate(paths(full_d.frames, full_d.depths)):
        assert full_d.base_totals[i] == total_b.get(p, 0)
        assert full_d.head_totals[i] == total_h.get(p, 0)


def real_size_stacks(n: int, seed: int = 7) -> tuple[list[tuple[int, ...]], list[int]]:
    rng = random.Random(seed)
    made: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    while len(out) < n:
        base = out[rng.randrange(len(out))] if out and rng.random() < 0.95 else ()
        stack = base[: rng.randint(0, len(base))] + tuple(
            min(2999, int(rng.paretovariate(0.7))) for _ in range(rng.randint(1, 10)))
        if stack not in made:
            made.add(stack)
            out.append(stack)
    return out, [max(1, int(rng.paretovariate(1.2) * 50)) for _ in out]


@pytest.mark.parametrize("inverted", [False, True])
def test_twins_agree_on_real_size_input(inverted: bool) -> None:
    stacks, weights = real_size_stacks(50_000)
    rank = list(range(3000))
    random.Random(3).shuffle(rank)
    total = sum(weights)
    for min_total in (0, total * 0.1 / 1180):
        c = CYTHON.fold(stacks, weights, rank, inverted, min_total)
        p = PYTHON.fold(stacks, weights, rank, inverted, min_total)
        assert tuple(c) == tuple(p)
        assert c.totals[0] == total
    head = weights[::-1]
    assert tuple(CYTHON.fold_diff(stacks, weights, head, rank, inverted)) == tuple(
        PYTHON.fold_diff(stacks, weights, head, rank, inverted))


def test_twins_are_listed() -> None:
    assert "flame" in _impl.TWINS
