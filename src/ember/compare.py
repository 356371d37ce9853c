"""Comparing two profiles: each function's share of the total, before and after.

Functions are matched across the two versions of the code by qualified name
and file, not by line: an edit above a function moves its first line, and it
is still the same function. Lines only break ties when one name appears more
than once in a file (two lambdas of one function): those are paired in order,
as close in line as they can be. Relative and absolute spellings of one file
are matched first (:func:`ember.frames.unify_files`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from ember.frames import rename, unify_files
from ember.profile import Frame, Profile

NEW, GONE, GREW, SHRANK, SAME = "new", "gone", "grew", "shrank", "same"

_PAIRING_LIMIT = 250_000
"""Above this many line pairs in one name group, pair by rank instead of by distance."""


class ShareChange(NamedTuple):
    """One function's self share in ``base`` and in ``head``.

    ``base_frame`` / ``head_frame`` spell the function as each profile does;
    ``None`` where it does not occur at all (new, or gone).
    """

    base_frame: Frame | None
    head_frame: Frame | None
    base_share: float
    head_share: float

    @property
    def frame(self) -> Frame:
        """The function as the newer profile spells it (the older one's when gone)."""
        frame = self.head_frame or self.base_frame
        assert frame is not None
        return frame

    @property
    def delta(self) -> float:
        return self.head_share - self.base_share

    @property
    def state(self) -> str:
        """``new``, ``gone``, ``grew``, ``shrank`` or ``same``."""
        if self.base_frame is None:
            return NEW
        if self.head_frame is None:
            return GONE
        if self.delta > 0:
            return GREW
        return SHRANK if self.delta < 0 else SAME


def self_shares(profile: Profile, value: str = "samples") -> dict[Frame, float]:
    """Each function's self value as a fraction of the profile's total."""
    total = profile.totals().get(value)
    if not total:
        return {}
    return {s.frame: s.self_value / total
            for s in profile.top_functions(n=len(profile.frames), value=value) if s.self_value}


def match_functions(base: Iterable[Frame], head: Iterable[Frame]) -> dict[Frame, Frame]:
    """Each frame of ``base`` that is a function of ``head``, mapped to ``head``'s frame.

    Same qualified name and file make the same function, whatever the line.
    Where a (name, file) holds several lines on either side, as many as can
    be are paired, in line order, with the smallest total line distance.
    """
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for side, frames in enumerate((base, head)):
        for frame in set(frames):
            groups[(frame.name, frame.file)][side].append(frame.line)
    out: dict[Frame, Frame] = {}
    for (name, file), (before, after) in groups.items():
        if not before or not after:
            continue
        for old, new in _pair_lines(sorted(before), sorted(after)):
            out[Frame(name, file, old)] = Frame(name, file, new)
    return out


def _pair_lines(before: list[int], after: list[int]) -> list[tuple[int, int]]:
    if len(before) == len(after) == 1:
        return [(before[0], after[0])]
    if len(before) > len(after):
        return [(b, a) for a, b in _pair_lines(after, before)]
    # Now len(before) <= len(after): every line of ``before`` gets one of
    # ``after``, in order, minimising the summed distance.
    m, n = len(before), len(after)
    if m * n > _PAIRING_LIMIT:
        exact = set(before) & set(after)
        rest_b = [b for b in before if b not in exact]
        rest_a = [a for a in after if a not in exact]
        return sorted([(x, x) for x in exact] + list(zip(rest_b, rest_a, strict=False)))
    inf = float("inf")
    # cost[i][j]: best cost of pairing before[:i] within after[:j].
    cost = [[0.0] * (n + 1)] + [[inf] * (n + 1) for _ in range(m)]
    for i in range(1, m + 1):
        row, up = cost[i], cost[i - 1]
        for j in range(i, n + 1):
            paired = up[j - 1] + abs(before[i - 1] - after[j - 1])
            row[j] = min(row[j - 1], paired)
    pairs = []
    i, j = m, n
    while i > 0:
        if cost[i][j] == cost[i][j - 1] and j > i:
            j -= 1
        else:
            pairs.append((before[i - 1], after[j - 1]))
            i, j = i - 1, j - 1
    return pairs[::-1]


def align(base: Profile, head: Profile) -> tuple[Profile, Profile]:
    """``base`` and ``head`` with every matched function spelled as ``head`` spells it,
    so that frame-by-frame comparisons (the differential flamegraph) see one
    function where a moved line or a relative file name would show two."""
    base, head = unify_files([base, head])
    return rename(base, match_functions(base.frames, head.frames)), head


def share_changes(base: Profile, head: Profile, value: str = "samples") -> list[ShareChange]:
    """Every function with a self share in either profile, by the size of its change.

    Shares are normalised by each profile's total, so profiles of different
    lengths or rates compare fairly. Largest change first (growth and
    shrinkage alike); unchanged functions last.
    """
    base, head = unify_files([base, head])
    matched = match_functions(base.frames, head.frames)
    before, after = self_shares(base, value), self_shares(head, value)
    rows: dict[Frame, ShareChange] = {}
    for frame, share in before.items():
        now = matched.get(frame)
        rows[now or frame] = ShareChange(frame, now, share, after.get(now, 0.0) if now else 0.0)
    previous = {new: old for old, new in matched.items()}
    for frame, share in after.items():
        if frame not in rows:
            old = previous.get(frame)
            rows[frame] = ShareChange(old, frame, 0.0, share)
    changes = list(rows.values())
    changes.sort(key=lambda c: (-abs(c.delta), c.frame))
    return changes
