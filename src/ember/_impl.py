"""Chooses, once per process, between the Cython modules and their twins.

``EMBER_PURE_PYTHON=1`` forces the pure-Python twins. If the compiled modules
cannot be imported, ember says so once in the log and uses the twins.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger("ember")


def _choose() -> tuple[str, ModuleType, ModuleType]:
    if os.environ.get("EMBER_PURE_PYTHON", "") not in ("", "0"):
        from ember import _capture_py, _folded_py

        return "python", _capture_py, _folded_py
    try:
        from ember import _capture, _folded
    except ImportError as exc:
        from ember import _capture_py, _folded_py

        log.warning("ember: compiled extensions unavailable (%s); using pure Python", exc)
        return "python", _capture_py, _folded_py
    return "cython", _capture, _folded


IMPLEMENTATION, capture, folded = _choose()


def modules(name: str | None = None) -> tuple[ModuleType, ModuleType]:
    """The (capture, folded) modules of one implementation; ``None``: the chosen one."""
    if name is None or name == IMPLEMENTATION:
        return capture, folded
    if name == "python":
        from ember import _capture_py, _folded_py

        return _capture_py, _folded_py
    if name == "cython":
        from ember import _capture, _folded

        return _capture, _folded
    raise ValueError(f"implementation must be 'cython' or 'python', not {name!r}")


def implementation() -> str:
    """``"cython"`` when the compiled hot path runs, ``"python"`` for the twins."""
    return IMPLEMENTATION
