"""CPU burners in known functions, shared by the test servers' apps."""

from __future__ import annotations

import os
import time

import ember


def burn_alpha(seconds: float = 0.02) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_beta(seconds: float = 0.02) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_items(seconds: float = 0.02) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def dump_profile() -> str:
    """Write the running sampler's profile to $EMBER_TEST_PROFILE; its path."""
    sampler = ember.current()
    assert sampler is not None, "ember is not running in the worker"
    path = os.environ["EMBER_TEST_PROFILE"]
    ember.dump(sampler.profile(), path)
    return path
