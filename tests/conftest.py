"""Shared fixtures: both implementations, and no profiler left running."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from ember import _impl, middleware
from ember.attribution import registry
from ember.sampler import running_samplers

IMPLEMENTATIONS = ("cython", "python")


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per implementation."""
    return str(request.param)


@pytest.fixture
def capture(implementation: str) -> ModuleType:
    return _impl.module("capture", implementation)


@pytest.fixture
def folded(implementation: str) -> ModuleType:
    return _impl.module("folded", implementation)


@pytest.fixture(autouse=True)
def no_sampler_left_running() -> Iterator[None]:
    yield
    left = list(running_samplers())
    for sampler in left:
        sampler.stop()
    assert not left, f"a test left {len(left)} sampler(s) running"


@pytest.fixture
def python_env() -> dict[str, str]:
    """Environment for child Python processes, keeping this run's implementation."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """The process-wide attribution registry, empty before and after the test."""
    cap, new_paths, clock = registry.max_endpoints, registry.max_new_paths, registry.clock
    registry.reset()
    yield
    registry.reset()
    registry.max_endpoints, registry.max_new_paths, registry.clock = cap, new_paths, clock


@pytest.fixture
def finished() -> Iterator[list[middleware.Request]]:
    """Every request that ``middleware.end`` reported during the test, in order."""
    seen: list[middleware.Request] = []
    middleware.OBSERVERS.append(seen.append)
    yield seen
    middleware.OBSERVERS.remove(seen.append)


PYTHON = sys.executable
