# Hand-written stub of the compiled ext/_folded.pyx (same interface as _folded_py.py).
from collections.abc import Iterable

class FoldedParser:
    frames: list[str]
    stacks: list[tuple[int, ...]]
    counts: list[int]
    lines: int
    total: int
    def __init__(self) -> None: ...
    def feed(self, lines: Iterable[str]) -> None: ...
