"""Exception types of the public API. Each carries the CLI exit code it maps to."""

from __future__ import annotations


class EmberError(Exception):
    """Base of every error ember raises on purpose."""

    exit_code = 2


class ConfigError(EmberError, ValueError):
    """A setting (keyword argument or ``EMBER_*`` variable) has an invalid value."""


class FormatError(EmberError, ValueError):
    """An input file is not a valid profile; the message names the file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(where + message)


class ValueRangeError(EmberError, ValueError):
    """A profile value would leave the one range every format holds.

    ``samples``, ``cpu_ns`` and ``wall_ns`` are whole numbers from 0 to
    :data:`ember.profile.MAX_VALUE` (2**63 - 1, pprof's int64), and so is a
    profile's total of each: adding or merging past it raises this error.
    """


class ProfilerStateError(EmberError, RuntimeError):
    """The profiler was asked to do something its current state does not allow."""
