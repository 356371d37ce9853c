# Hand-written stub of the compiled ext/_flame.pyx (same interface as _flame_py.py).
from collections.abc import Sequence
from typing import NamedTuple

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

def fold(
    stacks: Sequence[Sequence[int]],
    weights: Sequence[int],
    rank: Sequence[int],
    inverted: bool = ...,
    min_total: float = ...,
) -> FlameTree: ...
def fold_diff(
    stacks: Sequence[Sequence[int]],
    base: Sequence[int],
    head: Sequence[int],
    rank: Sequence[int],
    inverted: bool = ...,
    min_base: float = ...,
    min_head: float = ...,
) -> DiffTree: ...
