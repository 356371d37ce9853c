"""Chooses, once per process, between the Cython modules and their twins.

Each hot module exists twice: compiled ``ember._NAME`` (from ``ext/_NAME.pyx``)
and pure-Python ``ember._NAME_py``. ``EMBER_PURE_PYTHON=1`` forces the twins.
If the compiled modules cannot be imported, ember says so once in the log and
uses the twins.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

log = logging.getLogger("ember")

TWINS = ("capture", "folded", "flame", "wake")
"""Every module that has a compiled version and a pure-Python twin."""


def _choose() -> str:
    if os.environ.get("EMBER_PURE_PYTHON", "") not in ("", "0"):
        return "python"
    try:
        for name in TWINS:
            importlib.import_module(f"ember._{name}")
    except ImportError as exc:
        log.warning("ember: compiled extensions unavailable (%s); using pure Python", exc)
        return "python"
    return "cython"


IMPLEMENTATION = _choose()


def module(name: str, implementation: str | None = None) -> ModuleType:
    """The ``name`` twin of one implementation; ``None``: the one chosen for the process."""
    if name not in TWINS:
        raise ValueError(f"no twin module named {name!r}; known: {', '.join(TWINS)}")
    implementation = implementation or IMPLEMENTATION
    if implementation == "python":
        return importlib.import_module(f"ember._{name}_py")
    if implementation == "cython":
        return importlib.import_module(f"ember._{name}")
    raise ValueError(f"implementation must be 'cython' or 'python', not {implementation!r}")


def implementation() -> str:
    """``"cython"`` when the compiled hot path runs, ``"python"`` for the twins."""
    return IMPLEMENTATION
