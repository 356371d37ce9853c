"""Stack-depth helpers shared by the benchmarks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def frame_depth(frame: FrameType | None) -> int:
    """Frames from ``frame`` to the root of its thread, both included."""
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def at_depth(depth: int, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` so that its own frame sits ``depth`` frames deep."""
    if frame_depth(sys._getframe()) < depth - 1:
        return at_depth(depth, function, *args)
    return function(*args)
