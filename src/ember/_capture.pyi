# Hand-written stub of the compiled ext/_capture.pyx (same interface as _capture_py.py).
from types import FrameType
from typing import Any

DEEP: tuple[str, str, int]
TRUNCATED: tuple[str, str, int]

def clock_id(native_id: int) -> int: ...
def thread_cpu_ns(native_id: int) -> int: ...

class Collector:
    max_stacks: int
    max_depth: int
    lines: bool
    missing: int
    gone: int
    frames: list[tuple[str, str, int]]
    stacks: list[tuple[int, ...]]
    truncated: int
    def __init__(self, max_stacks: int, max_depth: int, lines: bool = ...) -> None: ...
    @property
    def values(self) -> dict[tuple[int, Any], list[int]]: ...
    def set_thread(self, ident: int, native_id: int, labels: Any) -> None: ...
    def drop_thread(self, ident: int) -> None: ...
    def thread_idents(self) -> list[int]: ...
    def collect(
        self, frames: dict[int, FrameType], now_ns: int, cycle_ns: int, cpu_mode: bool
    ) -> int: ...
    def snapshot(
        self,
    ) -> tuple[
        list[tuple[str, str, int]], list[tuple[int, ...]], dict[tuple[int, Any], list[int]], int
    ]: ...
    def take(
        self,
    ) -> tuple[
        list[tuple[str, str, int]], list[tuple[int, ...]], dict[tuple[int, Any], list[int]], int
    ]: ...
