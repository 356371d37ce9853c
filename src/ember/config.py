"""Profiler configuration: one plain object shared by the API and the CLI.

Every field can be set by keyword argument or by an ``EMBER_<FIELD>``
environment variable (keyword arguments win). Invalid values raise
:class:`ConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from typing import Any

from ember.errors import ConfigError

MODES = ("cpu", "wall")
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the sampler. Defaults suit an always-on production service."""

    rate: float = 100.0
    """Mean sampling frequency in Hz."""
    mode: str = "cpu"
    """``cpu``: the threads on CPU at each sampling instant, weighted so that
    each thread's total is the CPU its clock measured; ``wall``: every thread,
    idle ones included, weighted by elapsed time."""
    budget: float = 0.01
    """Sampler CPU budget as a fraction of one core; 0 disables the budget."""
    max_interval: float = 1.0
    """Ceiling (seconds) on the interval stretched by the budget."""
    gil_handoff: bool = True
    """Take the GIL within tens of microseconds of each sampling instant by
    lowering the switch interval meanwhile (compiled sampler, CPython 3.11);
    off: wait for the GIL as any thread does (short CPU bursts between I/O
    calls are then under-sampled)."""
    max_threads: int = 64
    """Threads sampled per cycle at most (reservoir sampling beyond)."""
    max_stacks: int = 20_000
    """Distinct stacks per window at most; the overflow counts into ``[truncated]``."""
    max_depth: int = 1024
    """Frames per stack at most; deeper stacks lose their root-most frames."""
    lines: bool = False
    """Record the executing line of each frame instead of the function's first line."""
    window: float = 10.0
    """Seconds per sealed window; 0 keeps one window for the whole run."""
    max_windows: int = 360
    """Sealed windows kept in memory (the oldest are dropped)."""
    max_history_bytes: int = 64 * MIB
    """Bytes the sealed windows kept in memory may take (estimated as each window
    is sealed); the oldest are dropped beyond, and a window that alone takes
    more keeps its heaviest stacks, the rest counting into ``[truncated]``."""
    max_new_paths: int = 30
    """New endpoint labels made from raw paths (requests no framework routed)
    per minute at most; beyond, such requests share ``other`` (labels made
    earlier keep working). 0: raw paths never get a label of their own."""
    service: str = ""
    version: str = ""
    host: str = dataclasses.field(default_factory=socket.gethostname)
    disable: bool = False
    """``EMBER_DISABLE=1`` turns :func:`ember.start` into a no-op."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                _check(type(value) is int, field.name, value, "a whole number")
        _check(0 < self.rate <= 10_000, "rate", self.rate, "a frequency in (0, 10000] Hz")
        _check(self.mode in MODES, "mode", self.mode, "one of " + ", ".join(MODES))
        _check(0 <= self.budget <= 1, "budget", self.budget, "a fraction in [0, 1]")
        _check(self.max_interval >= 1 / self.rate, "max_interval", self.max_interval,
               "at least one sampling period")
        _check(self.max_threads >= 1, "max_threads", self.max_threads, "at least 1")
        _check(self.max_stacks >= 1, "max_stacks", self.max_stacks, "at least 1")
        _check(self.max_depth >= 2, "max_depth", self.max_depth, "at least 2")
        _check(self.window >= 0, "window", self.window, "seconds >= 0")
        _check(self.max_windows >= 1, "max_windows", self.max_windows, "at least 1")
        _check(self.max_history_bytes >= MIB, "max_history_bytes", self.max_history_bytes,
               f"at least 1 MiB ({MIB} bytes)")
        _check(self.max_new_paths >= 0, "max_new_paths", self.max_new_paths, "at least 0")

    @property
    def interval(self) -> float:
        """Mean sampling interval in seconds."""
        return 1.0 / self.rate

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build a config from ``EMBER_*`` variables, then keyword overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get("EMBER_" + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _parse(field.name, field.type, raw)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, type_name: object, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"EMBER_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: expected {expected}")
