"""The ranges every reader enforces, so that every profile read can be written in every
format: values (see :data:`ember.profile.MAX_VALUE`), line numbers, and metadata times,
which pprof stores as int64 nanoseconds."""

from __future__ import annotations

import math

from ember.profile import MAX_VALUE, Metadata

MAX_LINE = MAX_VALUE
"""Largest line number (pprof's int64); line numbers are never negative."""


def line_problem(line: int) -> str | None:
    """Why ``line`` is not a valid line number, or None."""
    if 0 <= line <= MAX_LINE:
        return None
    return f"line number {line} is outside 0..{MAX_LINE}"


def seconds_problem(name: str, seconds: float, *, negative: bool = True) -> str | None:
    """Why ``seconds`` cannot be a metadata time (finite, as int64 nanoseconds), or None."""
    nanos = seconds * 1e9
    if not math.isfinite(nanos) or abs(round(nanos)) > MAX_VALUE:
        return f"{name} {seconds!r} is out of range (as nanoseconds, at most {MAX_VALUE})"
    if seconds < 0 and not negative:
        return f"{name} {seconds!r} is negative"
    return None


def metadata_problem(meta: Metadata) -> str | None:
    """Why ``meta`` cannot be written in every format, or None."""
    return (seconds_problem("start", meta.start) or seconds_problem("duration", meta.duration)
            or seconds_problem("period", meta.period, negative=False))
