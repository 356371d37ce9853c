"""The curated public surface: everything in ``__all__`` exists and is documented."""

from __future__ import annotations

import inspect

import ember


def test_all_names_exist_and_are_documented() -> None:
    for name in ember.__all__:
        obj = getattr(ember, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"ember.{name} has no docstring"


def test_no_private_names_exported() -> None:
    assert all(not n.startswith("_") or n == "__version__" for n in ember.__all__)
    assert {"start", "stop", "profile", "Sampler", "Profile", "load", "dump",
            "implementation"} <= set(ember.__all__)


def test_implementation_is_one_of_the_two() -> None:
    assert ember.implementation() in ("cython", "python")
