"""``ember advise``: which pure-Python functions are worth migrating to Cython.

Compiling a function removes the interpreter from its own bytecode, and from
nothing else. So a candidate is a Python function whose *self* time (samples
where it is the innermost frame) is at least ``min_share`` of the
application's total and at least :data:`MIN_OWN` of its own total: a caller
whose time is in what it calls (``main``, a dispatcher) is not one.

Time in C called from Python is not the caller's bytecode. When the profile
holds native frames (py-spy ``--native``), a Python function's time in the
native frames under it is counted apart and reported as time in C, and it
does not make the function a candidate. An in-process profile has no native
frames: there a C function called from a Python line (``hashlib``, ``re``)
counts as that line's own time, and :attr:`Advice.native_frames` says so.

ember's own frames (its GC callback, middleware, anything in its package)
never appear: samples whose innermost Python code is ember's are left out of
the application's total, and ember's frames are left out of call paths.
Only the application's code is considered unless the standard library or
third-party packages are asked for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, NamedTuple

from ember import packages
from ember.frames import is_ember, is_python
from ember.profile import Frame, Profile

PATH_FRAMES = 4
"""Callers shown per path, nearest first."""
MIN_OWN = 0.4
"""Least fraction of a function's total time that must be its own bytecode."""
HOT_LOOP = 0.8
"""From this fraction of own time on, the function is itself where the time goes."""


class Candidate(NamedTuple):
    frame: Frame
    kind: str
    self_share: float
    total_share: float
    native_share: float
    """Share of the total spent in native code this function called directly."""
    paths: list[tuple[tuple[Frame, ...], float]]
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.frame.name, "file": self.frame.file, "line": self.frame.line,
            "kind": self.kind, "self_share": round(self.self_share, 6),
            "total_share": round(self.total_share, 6),
            "native_share": round(self.native_share, 6),
            "paths": [{"callers": [f.render() for f in path], "share": round(share, 6)}
                      for path, share in self.paths],
            "reason": self.reason,
        }


class NativeTime(NamedTuple):
    """Time a Python function spent in native code it called directly."""

    frame: Frame
    kind: str
    share: float
    callees: list[tuple[Frame, float]]
    """The native functions it called, heaviest first, with their shares."""

    def as_json(self) -> dict[str, Any]:
        return {"function": self.frame.name, "file": self.frame.file, "line": self.frame.line,
                "kind": self.kind, "share": round(self.share, 6),
                "callees": [{"function": f.render(), "share": round(share, 6)}
                            for f, share in self.callees]}


class Advice(NamedTuple):
    value: str
    total: int
    """The application's total (ember's own samples left out)."""
    native_frames: bool
    """Whether the profile shows native code under Python frames (else C time is unseen)."""
    candidates: list[Candidate]
    native: list[NativeTime]

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "total": self.total, "native_frames": self.native_frames,
                "candidates": [c.as_json() for c in self.candidates],
                "native": [n.as_json() for n in self.native]}


class _Tally:
    """Per Python function: self time, time in native callees, total; and its callers."""

    def __init__(self) -> None:
        self.total = 0
        self.native_frames = False
        self.own: Counter[Frame] = Counter()
        self.native: Counter[Frame] = Counter()
        self.inclusive: Counter[Frame] = Counter()
        self.callees: defaultdict[Frame, Counter[Frame]] = defaultdict(Counter)
        self.callers: defaultdict[Frame, Counter[tuple[Frame, ...]]] = defaultdict(Counter)

    def add(self, stack: tuple[Frame, ...], v: int) -> None:
        inner = next((i for i in range(len(stack) - 1, -1, -1) if is_python(stack[i])), None)
        if (stack and is_ember(stack[-1])) or (inner is not None and is_ember(stack[inner])):
            return  # ember's own time: not the application's
        self.total += v
        for frame in set(stack):  # recursion counts once
            self.inclusive[frame] += v
        if inner is None:
            return  # no Python code on the stack (a native thread, [truncated])
        function = stack[inner]
        if inner == len(stack) - 1:
            self.own[function] += v
            chain = [f for f in stack[:inner] if not is_ember(f)][-PATH_FRAMES:]
            self.callers[function][tuple(reversed(chain))] += v  # nearest caller first
        else:
            self.native_frames = True
            self.native[function] += v
            self.callees[function][stack[inner + 1]] += v


def default_value(profile: Profile) -> str:
    """CPU time when the profile has it, else sample counts."""
    return "cpu_ns" if profile.totals().cpu_ns else "samples"


def advise(profile: Profile, n: int = 10, *, value: str | None = None,
           kinds: tuple[str, ...] = (packages.APP,), min_share: float = 0.01,
           paths: int = 3) -> Advice:
    """The ``n`` best candidates by self share of ``value`` (at least ``min_share`` of the
    application's total), and the functions whose time is in C they call."""
    value = value or default_value(profile)
    tally = _Tally()
    per_stack = profile.stack_values(value)
    for sid, v in per_stack.items():
        if v:
            tally.add(tuple(profile.frames[f] for f in profile.stacks[sid]), v)
    total = tally.total
    found: list[Candidate] = []
    native: list[NativeTime] = []
    if not total:
        return Advice(value, 0, False, found, native)
    for function, own in sorted(tally.own.items(), key=lambda item: (-item[1], item[0])):
        if len(found) >= n or own / total < min_share:
            break
        kind = packages.classify(function)
        inclusive = tally.inclusive[function]
        if kind not in kinds or own / inclusive < MIN_OWN:
            continue
        top_paths = [(path, v / total) for path, v in tally.callers[function].most_common(paths)]
        found.append(Candidate(
            function, kind, own / total, inclusive / total, tally.native[function] / total,
            top_paths, _reason(own, inclusive, tally.native[function],
                               len(tally.callers[function]), tally.native_frames)))
    for function, time in sorted(tally.native.items(), key=lambda item: (-item[1], item[0])):
        kind = packages.classify(function)
        if len(native) >= n or time / total < min_share:
            break
        if kind in kinds:
            callees = [(f, v / total) for f, v in tally.callees[function].most_common(3)]
            native.append(NativeTime(function, kind, time / total, callees))
    return Advice(value, total, tally.native_frames, found, native)


def candidates(profile: Profile, n: int = 10, *, value: str | None = None,
               kinds: tuple[str, ...] = (packages.APP,), min_share: float = 0.01,
               paths: int = 3) -> list[Candidate]:
    """The ``n`` best candidates (see :func:`advise`)."""
    return advise(profile, n, value=value, kinds=kinds, min_share=min_share,
                  paths=paths).candidates


def _reason(own: int, inclusive: int, native: int, n_paths: int, native_frames: bool) -> str:
    part = own / inclusive
    where = "one call path" if n_paths == 1 else f"{n_paths} call paths"
    if native_frames:
        text = f"{part:.0%} of its time is its own bytecode, reached by {where}"
    else:
        text = (f"{part:.0%} of its time is in its own lines (bytecode, or C they call: "
                f"no native frames here to tell), reached by {where}")
    rest = []
    if native:
        rest.append(f"{native / inclusive:.0%} in C it calls")
    if inclusive - own - native > 0:
        rest.append(f"{(inclusive - own - native) / inclusive:.0%} in Python it calls")
    if part >= HOT_LOOP:
        return text + ": compiling it takes the interpreter out of where the time goes"
    return text + f"; the rest ({', '.join(rest)}): compile it, and look at its callees too"
