"""Pure-Python twin of ``ext/_flame.pyx``: folds stacks into a flamegraph layout tree.

Input: stacks (tuples of frame ids, root first), one or two non-negative
integer weights per stack (``fold``: one; ``fold_diff``: base and head), and
a rank per frame id that orders siblings (ties broken by frame id), e.g. the
alphabetical rank of each frame's name like flamegraph.pl.

Output: the merged tree in preorder. Node 0 is the root (frame id ``-1``,
depth 0, the sum of all weights; stacks of zero frames count as its self).
Every other node has a frame id, a depth (1 = the outermost frame), a start
offset (the weight laid out left of it, so ``start .. start + total`` is its
span) and total and self weights. Children are merged by frame id, sorted by
rank, and laid out from their parent's left edge; a parent's self weight is
the gap at its right. ``inverted=True`` folds each stack leaf first (an
icicle of callers: depth 1 holds the leaf functions).

Stacks with all weights zero add nothing. Nodes whose total is below
``min_total`` (``fold_diff``: below ``min_base`` in base *and* below
``min_head`` in head) are left out and counted in ``elided``; a node's
descendants are never wider, so a subtree goes whole. Offsets of the kept
nodes are unaffected. Weights must fit in a signed 64-bit integer; both twins
give identical results and raise the same errors for identical input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

_INT64_MAX = (1 << 63) - 1


class FlameTree(NamedTuple):
    frames: list[int]
    depths: list[int]
    starts: list[int]
    totals: list[int]
    selfs: list[int]
    elided: int


class DiffTree(NamedTuple):
    frames: list[int]
    depths: list[int]
    base_starts: list[int]
    base_totals: list[int]
    base_selfs: list[int]
    head_starts: list[int]
    head_totals: list[int]
    head_selfs: list[int]
    elided: int


def _positions(rank: Sequence[int]) -> tuple[list[int], list[int]]:
    """(frame id by sibling position, sibling position by frame id)."""
    order = sorted(range(len(rank)), key=lambda f: (rank[f], f))
    pos = [0] * len(order)
    for p, f in enumerate(order):
        pos[f] = p
    return order, pos


def _fold(
    stacks: Sequence[Sequence[int]],
    channels: Sequence[Sequence[int]],
    rank: Sequence[int],
    inverted: bool,
    mins: Sequence[float],
) -> tuple[list[int], list[int], list[list[int]], list[list[int]], list[list[int]], int]:
    nch = len(channels)
    for ch in channels:
        if len(ch) != len(stacks):
            raise ValueError("one weight per stack is needed")
    order, pos = _positions(rank)
    n_frames = len(order)
    entries: list[tuple[list[int], tuple[int, ...]]] = []
    for i, stack in enumerate(stacks):
        ws = tuple(int(ch[i]) for ch in channels)
        for w in ws:
            if w < 0:
                raise ValueError(f"negative weight {w} for stack {i}")
            if w > _INT64_MAX:
                raise OverflowError(f"weight {w} of stack {i} does not fit in 64 bits")
        key = []
        for f in (reversed(stack) if inverted else stack):
            if not 0 <= f < n_frames:
                raise ValueError(f"frame id {f} has no rank")
            key.append(pos[f])
        if not any(ws):
            continue
        key.append(n_frames)  # sentinel: a stack ending here sorts after its extensions
        entries.append((key, ws))
    entries.sort(key=lambda e: e[0])

    frames = [-1]
    depths = [0]
    starts = [[0] for _ in range(nch)]
    totals = [[0] for _ in range(nch)]
    selfs = [[0] for _ in range(nch)]
    path_key: list[int] = []
    path_node: list[int] = []
    x = [0] * nch
    for key, ws in entries:
        length = len(key) - 1
        d = 0
        m = min(length, len(path_key))
        while d < m and path_key[d] == key[d]:
            d += 1
        del path_key[d:]
        del path_node[d:]
        for dd in range(d, length):
            node = len(frames)
            frames.append(order[key[dd]])
            depths.append(dd + 1)
            for c in range(nch):
                starts[c].append(x[c])
                totals[c].append(0)
                selfs[c].append(0)
            path_key.append(key[dd])
            path_node.append(node)
        leaf = path_node[-1] if length else 0
        for c in range(nch):
            w = ws[c]
            tot = totals[c]
            for node in path_node:
                tot[node] += w
            selfs[c][leaf] += w
            x[c] += w
    for c in range(nch):
        totals[c][0] = x[c]

    keep = [0] + [
        i for i in range(1, len(frames))
        if any(totals[c][i] >= mins[c] for c in range(nch))
    ]
    elided = len(frames) - len(keep)
    return (
        [frames[i] for i in keep],
        [depths[i] for i in keep],
        [[s[i] for i in keep] for s in starts],
        [[t[i] for i in keep] for t in totals],
        [[s[i] for i in keep] for s in selfs],
        elided,
    )


def fold(
    stacks: Sequence[Sequence[int]],
    weights: Sequence[int],
    rank: Sequence[int],
    inverted: bool = False,
    min_total: float = 0,
) -> FlameTree:
    """The layout tree of one profile (see the module docstring)."""
    frames, depths, starts, totals, selfs, elided = _fold(
        stacks, [weights], rank, inverted, [min_total])
    return FlameTree(frames, depths, starts[0], totals[0], selfs[0], elided)


def fold_diff(
    stacks: Sequence[Sequence[int]],
    base: Sequence[int],
    head: Sequence[int],
    rank: Sequence[int],
    inverted: bool = False,
    min_base: float = 0,
    min_head: float = 0,
) -> DiffTree:
    """The merged layout tree of two profiles' weights on the same stacks.

    Offsets and totals are given in each profile's own weights; a layout that
    mixes both (e.g. the mean of the normalised shares) is a linear
    combination of the two, so it stays consistent.
    """
    frames, depths, starts, totals, selfs, elided = _fold(
        stacks, [base, head], rank, inverted, [min_base, min_head])
    return DiffTree(frames, depths, starts[0], totals[0], selfs[0],
                    starts[1], totals[1], selfs[1], elided)
