"""What every CLI verb is: a name, a help line, its arguments and a run method."""

from __future__ import annotations

import argparse
from typing import ClassVar


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
