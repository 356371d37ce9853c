"""A sealed window: what the sampler collected between two seal times."""

from __future__ import annotations

import dataclasses

from ember.profile import Labels, Metadata, Profile


@dataclasses.dataclass
class Window:
    """Raw tables of one sealed window; converted to a Profile only when read."""

    meta: Metadata
    frames: list[tuple[str, str, int]]
    stacks: list[tuple[int, ...]]
    values: dict[tuple[int, Labels], list[int]]

    def profile(self) -> Profile:
        return Profile.from_tables(self.frames, self.stacks, self.values,
                                   dataclasses.replace(self.meta))
