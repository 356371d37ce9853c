"""Comparing two profiles: each function's share of the total, before and after."""

from __future__ import annotations

from typing import NamedTuple

from ember.profile import Frame, Profile


class ShareChange(NamedTuple):
    frame: Frame
    base_share: float
    head_share: float

    @property
    def delta(self) -> float:
        return self.head_share - self.base_share


def self_shares(profile: Profile, value: str = "samples") -> dict[Frame, float]:
    """Each function's self value as a fraction of the profile's total."""
    total = profile.totals().get(value)
    if not total:
        return {}
    return {s.frame: s.self_value / total
            for s in profile.top_functions(n=len(profile.frames), value=value) if s.self_value}


def share_changes(base: Profile, head: Profile, value: str = "samples") -> list[ShareChange]:
    """Functions by how much their self share grew from ``base`` to ``head`` (largest first).

    Shares are normalised by each profile's total, so profiles of different
    lengths or rates compare fairly.
    """
    before, after = self_shares(base, value), self_shares(head, value)
    changes = [ShareChange(f, before.get(f, 0.0), after.get(f, 0.0)) for f in before.keys() | after]
    changes.sort(key=lambda c: (-c.delta, c.frame))
    return changes
