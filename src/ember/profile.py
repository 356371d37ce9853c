"""The one data model every source fills and every format reads: :class:`Profile`.

A profile is a frame table, a stack table (tuples of frame ids, root first) and
values per ``(stack, labels)``: ``samples``, ``cpu_ns`` and ``wall_ns``. Labels
are a small sorted tuple of ``(key, value)`` pairs such as
``(("endpoint", "GET /items/{id}"), ("thread", "MainThread"))``.

Values are whole numbers from 0 to :data:`MAX_VALUE` (pprof's int64), and so
is the profile's total of each kind, so every format can hold every profile
(and every sum a flamegraph makes of it): adding or merging past the range
raises :class:`~ember.errors.ValueRangeError` rather than clamping, since a
clamped count would be a silently wrong one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import index
from typing import NamedTuple

from ember.errors import ValueRangeError

Labels = tuple[tuple[str, str], ...]
VALUE_KINDS = ("samples", "cpu_ns", "wall_ns")
MAX_VALUE = (1 << 63) - 1
"""Largest value, and largest total of one value kind, a profile holds (2**63 - 1)."""


class Frame(NamedTuple):
    """One function: qualified name, file and first line (or executing line)."""

    name: str
    file: str = ""
    line: int = 0

    def render(self) -> str:
        """``qualname (file:line)``, the collapsed-stack spelling of a frame."""
        if not self.file and not self.line:
            return self.name
        return f"{self.name} ({self.file}:{self.line})"


TRUNCATED = Frame("[truncated]")
"""The single frame of the stack that absorbs samples beyond the stack-table cap."""
DEEP = Frame("[deep]")
"""The root frame of a stack cut at ``max_depth``."""
DEEP_FRAME_NAMES = frozenset({TRUNCATED.name, DEEP.name})
"""Names of ember's synthetic frames, which stand for no real code."""


def make_labels(mapping: Mapping[str, object] | Iterable[tuple[str, object]] = ()) -> Labels:
    """Normalise labels to the frozen, sorted form profiles use as keys."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclasses.dataclass(slots=True)
class Values:
    """Accumulated measurements of one (stack, labels) pair."""

    samples: int = 0
    cpu_ns: int = 0
    wall_ns: int = 0

    def add(self, samples: int, cpu_ns: int, wall_ns: int) -> None:
        self.samples += samples
        self.cpu_ns += cpu_ns
        self.wall_ns += wall_ns

    def get(self, kind: str) -> int:
        if kind not in VALUE_KINDS:
            raise ValueError(f"unknown value kind {kind!r}; expected one of {VALUE_KINDS}")
        value: int = getattr(self, kind)
        return value

    def astuple(self) -> tuple[int, int, int]:
        return (self.samples, self.cpu_ns, self.wall_ns)


@dataclasses.dataclass
class Metadata:
    """Where and when a profile was taken. Times are seconds; ``start`` is Unix time."""

    start: float = 0.0
    duration: float = 0.0
    period: float = 0.0
    mode: str = ""
    pids: tuple[int, ...] = ()
    host: str = ""
    service: str = ""
    version: str = ""
    gc: dict[int, tuple[int, float]] = dataclasses.field(default_factory=dict)
    """Garbage-collector pauses per generation: (collections, seconds)."""
    truncated: int = 0
    """Samples that went to the ``[truncated]`` stack because the stack table was full."""

    @classmethod
    def merged(cls, metas: Sequence[Metadata]) -> Metadata:
        """Combine metadata of merged profiles: span of times, union of pids, summed GC."""
        if not metas:
            return cls()
        started = [m for m in metas if m.start]
        start = min((m.start for m in started), default=0.0)
        end = max((m.start + m.duration for m in started), default=0.0)
        gc: dict[int, tuple[int, float]] = {}
        for m in metas:
            for gen, (count, seconds) in m.gc.items():
                old = gc.get(gen, (0, 0.0))
                gc[gen] = (old[0] + count, old[1] + seconds)

        def common(values: Iterable[str]) -> str:
            distinct = set(values) - {""}
            return distinct.pop() if len(distinct) == 1 else ""

        return cls(
            start=start,
            duration=(end - start) if started else max(m.duration for m in metas),
            period=next((m.period for m in metas if m.period), 0.0),
            mode=common(m.mode for m in metas),
            pids=tuple(sorted({p for m in metas for p in m.pids})),
            host=common(m.host for m in metas),
            service=common(m.service for m in metas),
            version=common(m.version for m in metas),
            gc=gc,
            truncated=sum(m.truncated for m in metas),
        )


class FunctionStat(NamedTuple):
    frame: Frame
    self_value: int
    total_value: int


class Profile:
    """Stacks of frames with values per (stack, labels), plus metadata."""

    def __init__(self, meta: Metadata | None = None) -> None:
        self.frames: list[Frame] = []
        self.stacks: list[tuple[int, ...]] = []
        self.values: dict[tuple[int, Labels], Values] = {}
        self.meta = meta if meta is not None else Metadata()
        self._frame_ids: dict[Frame, int] = {}
        self._stack_ids: dict[tuple[int, ...], int] = {}
        self._sums = (0, 0, 0)  # running totals, kept to enforce MAX_VALUE

    # -- building -----------------------------------------------------------------
    def frame_id(self, frame: Frame) -> int:
        """Intern a frame and return its id."""
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = self._frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return fid

    def stack_id(self, frame_ids: tuple[int, ...]) -> int:
        """Intern a stack of frame ids (root first) and return its id."""
        sid = self._stack_ids.get(frame_ids)
        if sid is None:
            sid = self._stack_ids[frame_ids] = len(self.stacks)
            self.stacks.append(frame_ids)
        return sid

    def add(
        self,
        frames: Sequence[Frame],
        samples: int = 1,
        cpu_ns: int = 0,
        wall_ns: int = 0,
        labels: Labels = (),
    ) -> None:
        """Add values for a stack given as frames, root first."""
        sid = self.stack_id(tuple(self.frame_id(f) for f in frames))
        self.add_values(sid, labels, samples, cpu_ns, wall_ns)

    def add_values(self, sid: int, labels: Labels, samples: int, cpu_ns: int, wall_ns: int) -> None:
        """Add values for an already interned stack id.

        Raises :class:`ValueRangeError` for a value that is not a whole number
        in ``0..MAX_VALUE`` or that would take the profile's total past it.
        """
        sums = self._sums
        if not (type(samples) is int and type(cpu_ns) is int and type(wall_ns) is int
                and samples >= 0 and cpu_ns >= 0 and wall_ns >= 0):
            samples, cpu_ns, wall_ns = _checked((samples, cpu_ns, wall_ns), sums)
        s, c, w = sums[0] + samples, sums[1] + cpu_ns, sums[2] + wall_ns
        if s > MAX_VALUE or c > MAX_VALUE or w > MAX_VALUE:
            _checked((samples, cpu_ns, wall_ns), sums)
        self._sums = (s, c, w)
        key = (sid, labels)
        values = self.values.get(key)
        if values is None:
            self.values[key] = Values(samples, cpu_ns, wall_ns)
        else:
            values.add(samples, cpu_ns, wall_ns)

    @classmethod
    def from_tables(
        cls,
        frames: Sequence[tuple[str, str, int]],
        stacks: Sequence[Sequence[int]],
        values: Mapping[tuple[int, Labels], Sequence[int]],
        meta: Metadata | None = None,
    ) -> Profile:
        """Build a profile from raw tables (as the collector and parsers produce them)."""
        profile = cls(meta)
        fmap = [profile.frame_id(Frame(*f)) for f in frames]
        smap = [profile.stack_id(tuple(fmap[f] for f in stack)) for stack in stacks]
        for (sid, labels), (samples, cpu_ns, wall_ns) in values.items():
            profile.add_values(smap[sid], labels, samples, cpu_ns, wall_ns)
        return profile

    @classmethod
    def from_interned(cls, frames: list[Frame], stacks: list[tuple[int, ...]],
                      samples: list[int], meta: Metadata | None = None) -> Profile:
        """A profile over already interned tables: distinct frames, distinct stacks
        with one unlabelled sample count each (what the folded parser produces)."""
        profile = cls(meta)
        profile.frames = frames
        profile._frame_ids = {frame: i for i, frame in enumerate(frames)}
        profile.stacks = stacks
        profile._stack_ids = {stack: i for i, stack in enumerate(stacks)}
        profile.values = {(sid, ()): Values(count) for sid, count in enumerate(samples)}
        for count in samples:
            if type(count) is not int or count < 0:
                _checked((count, 0, 0), (0, 0, 0))
        profile._sums = (sum(samples), 0, 0)
        _checked((0, 0, 0), profile._sums)
        return profile

    # -- combining ----------------------------------------------------------------
    def merge(self, *others: Profile) -> Profile:
        """A new profile holding the sum of this one and ``others``."""
        return merge([self, *others])

    def filter(self, **labels: str) -> Profile:
        """A new profile with only the values whose labels include all of ``labels``."""
        wanted = set(make_labels(labels))
        out = Profile(dataclasses.replace(self.meta))
        for stack, key_labels, values in self.samples():
            if wanted.issubset(key_labels):
                out.add(stack, *values.astuple(), labels=key_labels)
        return out

    def trim_roots(self, drop: Callable[[Frame], bool]) -> Profile:
        """A new profile whose stacks lose their root-most frames while ``drop`` holds.

        Used to hide a launcher's own frames (``ember record``'s bootstrap).
        A stack made only of dropped frames keeps its leaf.
        """
        out = Profile(dataclasses.replace(self.meta))
        for stack, labels, values in self.samples():
            start = 0
            while start < len(stack) - 1 and drop(stack[start]):
                start += 1
            out.add(stack[start:], *values.astuple(), labels=labels)
        return out

    # -- reading ------------------------------------------------------------------
    def samples(self) -> Iterator[tuple[tuple[Frame, ...], Labels, Values]]:
        """Every (stack as frames, labels, values) entry."""
        frames = self.frames
        for (sid, labels), values in self.values.items():
            yield tuple(frames[f] for f in self.stacks[sid]), labels, values

    def totals(self) -> Values:
        total = Values()
        for values in self.values.values():
            total.add(*values.astuple())
        return total

    def label_values(self, key: str) -> set[str]:
        """Distinct values of one label key."""
        return {v for (_, labels) in self.values for k, v in labels if k == key}

    def stack_values(self, value: str = "samples") -> Counter[int]:
        """One value summed per stack id, labels ignored."""
        out: Counter[int] = Counter()
        for (sid, _), values in self.values.items():
            out[sid] += values.get(value)
        return out

    def top_functions(
        self, n: int = 20, by: str = "self", value: str = "samples"
    ) -> list[FunctionStat]:
        """Functions by self value (leaf) or total value (anywhere on the stack)."""
        if by not in ("self", "total"):
            raise ValueError(f"by must be 'self' or 'total', not {by!r}")
        self_v: Counter[int] = Counter()
        total_v: Counter[int] = Counter()
        for sid, v in self.stack_values(value).items():
            stack = self.stacks[sid]
            if not stack:
                continue
            self_v[stack[-1]] += v
            for fid in set(stack):  # recursion counts once
                total_v[fid] += v
        ranking = self_v if by == "self" else total_v
        ordered = sorted(total_v, key=lambda f: (-ranking[f], -total_v[f], self.frames[f]))
        return [FunctionStat(self.frames[f], self_v[f], total_v[f]) for f in ordered[:n]]

    def top_paths(self, n: int = 20, value: str = "samples") -> list[tuple[tuple[Frame, ...], int]]:
        """The heaviest complete stacks, labels ignored."""
        per_stack = self.stack_values(value)
        ordered = sorted(per_stack, key=lambda s: (-per_stack[s], self.stacks[s]))
        return [(tuple(self.frames[f] for f in self.stacks[s]), per_stack[s]) for s in ordered[:n]]

    # -- comparing ----------------------------------------------------------------
    def canonical(self) -> dict[tuple[tuple[Frame, ...], Labels], tuple[int, int, int]]:
        """Table-order-independent content: (frames, labels) -> values, zeros dropped."""
        out: dict[tuple[tuple[Frame, ...], Labels], tuple[int, int, int]] = {}
        for stack, labels, values in self.samples():
            key = (stack, labels)
            old = out.get(key, (0, 0, 0))
            out[key] = (old[0] + values.samples, old[1] + values.cpu_ns, old[2] + values.wall_ns)
        return {k: v for k, v in out.items() if v != (0, 0, 0)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return self.meta == other.meta and self.canonical() == other.canonical()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        t = self.totals()
        return (f"<Profile {len(self.stacks)} stacks, {t.samples} samples, "
                f"cpu={t.cpu_ns / 1e9:.3f}s wall={t.wall_ns / 1e9:.3f}s>")


def _checked(values: tuple[object, object, object], sums: tuple[int, int, int]
             ) -> tuple[int, int, int]:
    """``values`` as ints, or :class:`ValueRangeError` saying which one is out of range."""
    out = []
    for kind, value, total in zip(VALUE_KINDS, values, sums, strict=True):
        try:
            number = index(value)  # type: ignore[arg-type]
        except TypeError:
            raise ValueRangeError(f"{kind} must be a whole number, not {value!r}") from None
        if not 0 <= number <= MAX_VALUE:
            raise ValueRangeError(f"{kind} value {number} is outside 0..{MAX_VALUE}")
        if total + number > MAX_VALUE:
            raise ValueRangeError(f"the profile's total {kind} would exceed {MAX_VALUE}")
        out.append(number)
    return out[0], out[1], out[2]


def merge(profiles: Iterable[Profile]) -> Profile:
    """Sum profiles into a new one (frames and stacks re-interned by value).

    Raises :class:`ValueRangeError` if a total would exceed :data:`MAX_VALUE`.
    """
    profiles = list(profiles)
    out = Profile(Metadata.merged([p.meta for p in profiles]))
    for p in profiles:
        fmap = [out.frame_id(f) for f in p.frames]
        smap = [out.stack_id(tuple(fmap[f] for f in s)) for s in p.stacks]
        try:
            for (sid, labels), values in p.values.items():
                out.add_values(smap[sid], labels, *values.astuple())
        except ValueRangeError as exc:
            raise ValueRangeError(f"cannot merge these profiles: {exc}") from None
    return out
