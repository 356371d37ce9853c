"""What every CLI verb is: a name, a help line, its arguments and a run method."""

from __future__ import annotations

import argparse
from typing import ClassVar

from ember.errors import EmberError
from ember.formats import load
from ember.profile import Profile, merge


class Command:
    """Base of the verbs. Subclasses set ``name`` and ``help`` and implement both methods.

    ``run`` returns the exit code; errors the user can cause are raised as
    :class:`ember.errors.EmberError` and printed by ``main`` as one line.
    """

    name: ClassVar[str]
    help: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


VALUES = {"samples": "samples", "cpu": "cpu_ns", "wall": "wall_ns"}
"""``--value`` choices and the Profile value each one reads."""


def add_value_argument(parser: argparse.ArgumentParser, default: str = "samples") -> None:
    parser.add_argument("--value", choices=sorted(VALUES), default=default,
                        help=f"what to weigh by: sample counts, CPU time or wall time "
                             f"(default {default})")


def load_inputs(paths: list[str], endpoint: str | None = None) -> Profile:
    """Every input file read (format detected from content) and merged into one profile."""
    # One input needs no merge: merging re-interns every frame and stack.
    profile = load(paths[0]) if len(paths) == 1 else merge(load(path) for path in paths)
    if endpoint is not None:
        profile = profile.filter(endpoint=endpoint)
        if not profile.values:
            known = ", ".join(sorted(merge(load(p) for p in paths).label_values("endpoint")))
            raise EmberError(f"no samples for endpoint {endpoint!r} "
                             f"(endpoints: {known or 'none recorded'})")
    return profile


def require_extension(path: str, *extensions: str) -> None:
    if not path.lower().endswith(extensions):
        raise EmberError(f"{path}: the output must end in {' or '.join(extensions)}")


def format_value(value: int, kind: str) -> str:
    """A value as people read it: a count, or seconds for times."""
    return str(value) if kind == "samples" else f"{value / 1e9:.3f}s"
