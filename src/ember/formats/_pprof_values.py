"""What pprof's numbers mean in an ember profile: a sample's values as samples, CPU and
wall time (the rules are in :mod:`ember.formats.pprof`), and the metadata."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

from ember.formats import _pprof_proto as pb
from ember.formats._limits import metadata_problem
from ember.formats._pprof_proto import Invalid
from ember.profile import MAX_VALUE, Metadata


def value_picker(sample_types: list[tuple[str, str]], default_type: str,
                  period_ns: int) -> Callable[[list[int]], tuple[int, int, int]]:
    """A function from a sample's values to (samples, cpu_ns, wall_ns); see the pprof doc."""
    def find(kinds: tuple[str, ...], units: Iterable[str]) -> tuple[int, int]:
        for i, (kind, unit) in enumerate(sample_types):
            if kind in kinds and unit in units:
                return i, pb.NS_PER_UNIT.get(unit, 1)
        return -1, 1

    cpu, cpu_scale = find(("cpu",), pb.NS_PER_UNIT)
    wall, wall_scale = find(("wall",), pb.NS_PER_UNIT)
    count, _ = find(("samples", "sample"), ("count",))
    if count < 0:
        count, _ = find((default_type,), ("count",))
    if count < 0:
        count = next((i for i, (_, unit) in enumerate(sample_types) if unit == "count"), -1)
    timed, timed_scale = (cpu, cpu_scale) if cpu >= 0 else (wall, wall_scale)
    used = sorted({i for i in (cpu, wall, count, timed) if i >= 0})

    def checked(value: int, column: int) -> int:
        if 0 <= value <= MAX_VALUE:
            return value
        kind, unit = sample_types[column]
        if value < 0:
            raise Invalid(f"a sample has the negative {kind}/{unit} value {value} (ember reads "
                          "counts and times, not the differences of a diff profile)")
        raise Invalid(f"a sample's {kind}/{unit} value is {value} ns, more than {MAX_VALUE}")

    def pick(values: list[int]) -> tuple[int, int, int]:
        for i in used:
            if values[i] < 0:
                checked(values[i], i)
        cpu_ns = checked(values[cpu] * cpu_scale, cpu) if cpu >= 0 else 0
        wall_ns = checked(values[wall] * wall_scale, wall) if wall >= 0 else 0
        if count >= 0:
            samples = values[count]
        elif timed >= 0 and period_ns > 0:
            ticks, rest = divmod(values[timed] * timed_scale, period_ns)  # round half to even
            samples = ticks + (2 * rest > period_ns or (2 * rest == period_ns and ticks % 2))
        else:
            samples = 1 if any(values) else 0
        return samples, cpu_ns, wall_ns

    return pick


def _exact(comment: str | None, nanos: int) -> float:
    """Seconds from a pprof nanosecond field, or the exact float an ember comment kept."""
    if comment is not None:
        try:
            value = float(comment)
        except ValueError:
            value = math.nan
        if math.isfinite(value * 1e9) and round(value * 1e9) == nanos:
            return value
    return nanos / 1e9


def metadata(comments: list[str], time_ns: int, duration_ns: int,
             period_type: tuple[str, str], period: int) -> Metadata:
    """Metadata from pprof's fields and ember's ``ember.KEY=VALUE`` comments."""
    ours: dict[str, str] = {}
    for comment in comments:
        if comment.startswith(pb.COMMENT_PREFIX) and "=" in comment:
            key, value = comment[len(pb.COMMENT_PREFIX):].split("=", 1)
            ours[key] = value
    scale = pb.NS_PER_UNIT.get(period_type[1], 0)
    period_ns = max(period * scale, 0)
    if period_ns > MAX_VALUE:
        raise Invalid(f"period {period} {period_type[1]} is more than {MAX_VALUE} ns")
    meta = Metadata(
        start=_exact(ours.get("start"), time_ns),
        duration=_exact(ours.get("duration"), duration_ns),
        period=_exact(ours.get("period"), period_ns),
        mode=ours.get("mode", ""),
        host=ours.get("host", ""),
        service=ours.get("service", ""),
        version=ours.get("version", ""),
    )
    with contextlib.suppress(ValueError):
        meta.pids = tuple(int(p) for p in ours.get("pids", "").split(",") if p)
    with contextlib.suppress(ValueError):
        meta.truncated = int(ours.get("truncated", "0"))
    gc: dict[int, tuple[int, float]] = {}
    try:
        for entry in ours.get("gc", "").split(","):
            if entry:
                gen, count, seconds = entry.split(":")
                if not math.isfinite(float(seconds)):
                    raise ValueError(seconds)
                gc[int(gen)] = (int(count), float(seconds))
        meta.gc = gc
    except ValueError:
        pass
    problem = metadata_problem(meta)
    if problem is not None:
        raise Invalid(problem)
    return meta
