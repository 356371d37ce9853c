"""``ember advise``: which pure-Python functions are worth migrating to Cython.

A function is a good candidate when much of the profile's CPU is spent in its
own bytecode (self time), not in what it calls: compiling it removes
interpreter overhead where the time really goes. Only the application's code
is considered unless the standard library or third-party packages are asked
for; native frames never are (there is nothing left to compile).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from ember import packages
from ember.profile import DEEP_FRAME_NAMES, Frame, Profile

PATH_FRAMES = 4
"""Callers shown per path, nearest first."""


class Candidate(NamedTuple):
    frame: Frame
    kind: str
    self_share: float
    total_share: float
    paths: list[tuple[tuple[Frame, ...], float]]
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.frame.name, "file": self.frame.file, "line": self.frame.line,
            "kind": self.kind, "self_share": round(self.self_share, 6),
            "total_share": round(self.total_share, 6),
            "paths": [{"callers": [f.render() for f in path], "share": round(share, 6)}
                      for path, share in self.paths],
            "reason": self.reason,
        }


def default_value(profile: Profile) -> str:
    """CPU time when the profile has it, else sample counts."""
    return "cpu_ns" if profile.totals().cpu_ns else "samples"


def candidates(profile: Profile, n: int = 10, *, value: str | None = None,
               kinds: tuple[str, ...] = (packages.APP,), min_share: float = 0.01,
               paths: int = 3) -> list[Candidate]:
    """The ``n`` best candidates, by self share of ``value``, at least ``min_share``."""
    value = value or default_value(profile)
    total = profile.totals().get(value)
    if not total:
        return []
    per_stack = profile.stack_values(value)
    out: list[Candidate] = []
    for stat in profile.top_functions(n=len(profile.frames), by="self", value=value):
        if len(out) >= n or stat.self_value / total < min_share:
            break
        kind = packages.classify(stat.frame)
        if kind not in kinds or stat.frame.name in DEEP_FRAME_NAMES:
            continue
        fid = profile.frame_id(stat.frame)
        callers: Counter[tuple[Frame, ...]] = Counter()
        for sid, v in per_stack.items():
            stack = profile.stacks[sid]
            if stack and stack[-1] == fid:
                chain = stack[-1 - PATH_FRAMES:-1][::-1]  # nearest caller first
                callers[tuple(profile.frames[f] for f in chain)] += v
        top_paths = [(path, v / total) for path, v in callers.most_common(paths)]
        out.append(Candidate(stat.frame, kind, stat.self_value / total,
                             stat.total_value / total, top_paths,
                             _reason(stat.self_value, stat.total_value, len(callers))))
    return out


def _reason(self_value: int, total_value: int, n_paths: int) -> str:
    own = self_value / total_value if total_value else 0.0
    where = "one call path" if n_paths == 1 else f"{n_paths} call paths"
    if own >= 0.8:
        return (f"{own:.0%} of its time is its own bytecode, reached by {where}: "
                "a hot Python loop that compiling removes the interpreter from")
    if own >= 0.4:
        return (f"{own:.0%} of its time is its own bytecode; the rest is in what it calls: "
                "compile it, and look at its callees too")
    return (f"only {own:.0%} of its time is its own code: compiling it helps less than "
            "speeding up what it calls")
