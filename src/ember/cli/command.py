"""What every CLI verb is: a name, a help line, its arguments and a run method;
and what the verbs share: reading inputs, choosing the value to weigh by,
checking numbers."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import ClassVar

from ember import formats
from ember.cli.inputs import Selection, read_inputs
from ember.errors import EmberError, FormatError
from ember.frames import unify_files
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
_CHOICES = {kind: choice for choice, kind in VALUES.items()}
_NAMES = {"samples": "sample counts", "cpu_ns": "CPU times", "wall_ns": "wall times"}

VALUE_RULE = "default: cpu when every input has CPU times, else samples"
"""How every verb with ``--value`` chooses when it is not given."""


def add_value_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--value", choices=sorted(VALUES),
                        help=f"what to weigh by: sample counts, CPU time or wall time "
                             f"({VALUE_RULE})")


def default_value(profiles: Sequence[Profile]) -> str:
    """CPU time when every profile has some, else sample counts (a Profile value kind)."""
    held = [p for p in profiles if p.values]  # an input the endpoint filter emptied has no say
    if held and all(p.totals().cpu_ns for p in held):
        return "cpu_ns"
    return "samples"


def choose_value(inputs: Sequence[tuple[str, Profile]], asked: str | None) -> str:
    """The Profile value to weigh by: ``--value`` (``asked``) or the default.

    A time asked of an input that holds none is an error naming the input,
    not a flamegraph or table of zeros.
    """
    if asked is None:
        return default_value([profile for _, profile in inputs])
    value = VALUES[asked]
    for path, profile in inputs:
        totals = profile.totals()
        if value != "samples" and profile.values and not totals.get(value):
            why = _why_missing(path, profile, value)
            others = [c for c, kind in VALUES.items() if kind == "samples" or totals.get(kind)]
            raise EmberError(f"{path} has no {_NAMES[value]}{why}: use "
                             + " or ".join(f"--value {c}" for c in others))
    return value


def _why_missing(path: str, profile: Profile, value: str) -> str:
    try:
        with open(path, "rb") as stream:
            name = formats.detect(stream.read(4096), path).NAME
    except (OSError, FormatError):
        name = ""
    if name == "collapsed":
        return " (a collapsed file holds sample counts only)"
    if value == "cpu_ns" and profile.meta.mode == "wall":
        return " (it was recorded in wall mode)"
    return ""


def value_choice(value: str) -> str:
    """The ``--value`` spelling of a Profile value kind (``cpu_ns`` -> ``cpu``)."""
    return _CHOICES[value]


def load_each(paths: Sequence[str], endpoint: str | None = None,
              chosen: Selection | None = None) -> list[Profile]:
    """Every input read (a file's format detected from content; a store queried
    for the windows ``chosen`` selects), filtered by ``endpoint``.

    An endpoint none of the inputs holds is an error listing those they hold.
    """
    return only_endpoint(read_inputs(paths, chosen), endpoint)


def only_endpoint(loaded: list[Profile], endpoint: str | None) -> list[Profile]:
    """``loaded`` filtered by ``endpoint``: an error listing the endpoints they
    hold when none of them holds it."""
    if endpoint is None:
        return loaded
    filtered = [profile.filter(endpoint=endpoint) for profile in loaded]
    if not any(profile.values for profile in filtered):
        known = sorted(set().union(*(profile.label_values("endpoint") for profile in loaded)))
        raise EmberError(f"no samples for endpoint {endpoint!r} "
                         f"(endpoints: {', '.join(known) or 'none recorded'})")
    return filtered


def combine(profiles: Sequence[Profile]) -> Profile:
    """Profiles as one: a function spelled with a relative file in one and an
    absolute file in another is one function (:func:`ember.frames.unify_files`)."""
    unified = unify_files(profiles)
    # One input needs no merge: merging re-interns every frame and stack.
    return unified[0] if len(unified) == 1 else merge(unified)


def load_inputs(paths: Sequence[str], endpoint: str | None = None,
                chosen: Selection | None = None) -> Profile:
    """Every input read, filtered by ``endpoint`` and merged into one profile."""
    return combine(load_each(paths, endpoint, chosen))


def load_weighed(paths: Sequence[str], endpoint: str | None, asked: str | None,
                 chosen: Selection | None = None) -> tuple[Profile, str]:
    """:func:`load_inputs`, and the Profile value to weigh by (:func:`choose_value`)."""
    each = load_each(paths, endpoint, chosen)
    return combine(each), choose_value(list(zip(paths, each, strict=True)), asked)


def require_extension(path: str, *extensions: str) -> None:
    if not path.lower().endswith(extensions):
        raise EmberError(f"{path}: the output must end in {' or '.join(extensions)}")


def format_value(value: int, kind: str) -> str:
    """A value as people read it: a count, or seconds for times."""
    return str(value) if kind == "samples" else f"{value / 1e9:.3f}s"


def positive_int(text: str) -> int:
    """argparse type: a whole number above 0 (row counts)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}") \
            from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}")
    return number


def percentage(text: str) -> float:
    """argparse type: a percentage from 0 to 100."""
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not 0 <= number <= 100:  # also NaN
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, not {text!r}")
    return number
