"""Config (keywords, ``EMBER_*`` variables, validation) and the process-wide API
(``ember.start``/``stop``/``profile``); the choice of implementation is in
tests/integration/test_implementation_choice.py."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import pytest

import ember
from ember import Config, ConfigError, EmberError, Profile, ProfilerStateError, Sampler

# -- Config ---------------------------------------------------------------------

EVERY_SETTING = {
    "EMBER_RATE": ("rate", 250.0),
    "EMBER_MODE": ("mode", "wall"),
    "EMBER_BUDGET": ("budget", 0.05),
    "EMBER_MAX_INTERVAL": ("max_interval", 2.5),
    "EMBER_GIL_HANDOFF": ("gil_handoff", False),
    "EMBER_MAX_THREADS": ("max_threads", 8),
    "EMBER_MAX_STACKS": ("max_stacks", 100),
    "EMBER_MAX_DEPTH": ("max_depth", 64),
    "EMBER_LINES": ("lines", True),
    "EMBER_WINDOW": ("window", 0.0),
    "EMBER_MAX_WINDOWS": ("max_windows", 5),
    "EMBER_MAX_HISTORY_BYTES": ("max_history_bytes", 8 << 20),
    "EMBER_MAX_NEW_PATHS": ("max_new_paths", 12),
    "EMBER_SERVICE": ("service", "shop"),
    "EMBER_VERSION": ("version", "1.2.3"),
    "EMBER_HOST": ("host", "box-1"),
    "EMBER_DISABLE": ("disable", True),
}
RAW = {
    "EMBER_RATE": "250", "EMBER_MODE": "wall", "EMBER_BUDGET": "0.05",
    "EMBER_MAX_INTERVAL": "2.5", "EMBER_GIL_HANDOFF": "off", "EMBER_MAX_THREADS": "8",
    "EMBER_MAX_STACKS": "100",
    "EMBER_MAX_DEPTH": "64", "EMBER_LINES": "true", "EMBER_WINDOW": "0",
    "EMBER_MAX_WINDOWS": "5", "EMBER_MAX_HISTORY_BYTES": str(8 << 20),
    "EMBER_MAX_NEW_PATHS": "12", "EMBER_SERVICE": "shop", "EMBER_VERSION": "1.2.3",
    "EMBER_HOST": "box-1", "EMBER_DISABLE": "yes",
}


@pytest.fixture(autouse=True)
def clean_ember_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No EMBER_* setting from the caller's environment leaks into these tests."""
    for name in EVERY_SETTING:
        monkeypatch.delenv(name, raising=False)


def test_every_setting_has_an_env_var_and_parses() -> None:
    assert {name for name, _ in EVERY_SETTING.values()} == {
        f.name for f in dataclasses.fields(Config)}
    config = Config.from_env(RAW)
    for var, (name, expected) in EVERY_SETTING.items():
        value = getattr(config, name)
        assert value == expected and type(value) is type(expected), (var, value)


def test_defaults_without_env() -> None:
    config = Config.from_env({})
    assert (config.rate, config.mode, config.budget, config.window) == (100.0, "cpu", 0.01, 10.0)
    assert config.interval == pytest.approx(0.01)
    assert config.disable is False
    assert config.host  # the machine's host name


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_RATE", "50")
    monkeypatch.setenv("EMBER_MODE", "wall")
    monkeypatch.setenv("EMBER_SERVICE", "")  # empty: the default
    config = Config.from_env()
    assert (config.rate, config.mode, config.service) == (50.0, "wall", "")


def test_keyword_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_RATE", "50")
    monkeypatch.setenv("EMBER_MODE", "wall")
    config = Config.from_env(rate=75, mode=None)  # None: not given
    assert config.rate == 75
    assert config.mode == "wall"


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_bool_true_spellings(raw: str) -> None:
    assert Config.from_env({"EMBER_LINES": raw}).lines is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "OFF"])
def test_bool_false_spellings(raw: str) -> None:
    assert Config.from_env({"EMBER_DISABLE": raw}).disable is False


@pytest.mark.parametrize(
    ("env", "overrides", "named"),
    [
        ({"EMBER_RATE": "abc"}, {}, "EMBER_RATE"),
        ({"EMBER_MAX_THREADS": "2.5"}, {}, "EMBER_MAX_THREADS"),
        ({"EMBER_LINES": "maybe"}, {}, "EMBER_LINES"),
        ({"EMBER_DISABLE": "2"}, {}, "EMBER_DISABLE"),
        ({"EMBER_MODE": "fast"}, {}, "mode"),
        ({"EMBER_BUDGET": "1.5"}, {}, "budget"),
        ({}, {"rate": -1}, "rate"),
        ({}, {"rate": 0}, "rate"),
        ({}, {"rate": 20_000}, "rate"),
        ({}, {"rate": math.nan}, "rate"),
        ({}, {"mode": "x"}, "mode"),
        ({}, {"budget": -0.1}, "budget"),
        ({}, {"max_interval": 0.001}, "max_interval"),
        ({}, {"max_threads": 0}, "max_threads"),
        ({}, {"max_stacks": 0}, "max_stacks"),
        ({}, {"max_depth": 1}, "max_depth"),
        ({}, {"window": -1}, "window"),
        ({}, {"max_windows": 0}, "max_windows"),
        ({"EMBER_MAX_HISTORY_BYTES": "64MB"}, {}, "EMBER_MAX_HISTORY_BYTES"),
        ({}, {"max_history_bytes": 1000}, "max_history_bytes"),
        ({}, {"max_history_bytes": 0}, "max_history_bytes"),
        ({"EMBER_MAX_NEW_PATHS": "-3"}, {}, "max_new_paths"),
        ({}, {"max_new_paths": "30"}, "max_new_paths"),
        ({}, {"max_stacks": 2.5}, "max_stacks"),
        ({}, {"sampling_rate": 10}, "sampling_rate"),
    ],
)
def test_bad_values_raise_config_error_naming_the_setting(
    env: dict[str, str], overrides: dict[str, Any], named: str,
) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        Config.from_env(env, **overrides)
    assert isinstance(info.value, ValueError) and isinstance(info.value, EmberError)
    assert info.value.exit_code == 2


def test_config_validates_when_built_directly() -> None:
    with pytest.raises(ConfigError, match="rate"):
        Config(rate=-1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().rate = 5  # type: ignore[misc]


def test_sampler_settings() -> None:
    with pytest.raises(ConfigError, match="mode"):
        Sampler(mode="x")
    with pytest.raises(TypeError):
        Sampler(Config(), rate=5)
    with pytest.raises(ValueError, match="implementation"):
        Sampler(implementation="fortran")
    assert Sampler(Config(rate=7)).config.rate == 7
    assert Sampler(rate=7, mode="wall").config.mode == "wall"


# -- ember.start / stop / profile -----------------------------------------------


def test_start_twice_returns_the_same_sampler() -> None:
    first = second = None
    try:
        first = ember.start(rate=200, budget=0)
        assert first is not None and first.running
        second = ember.start(rate=50, mode="wall")
        assert second is first
        assert second.config.rate == 200 and second.config.mode == "cpu"  # unchanged
        assert ember.current() is first
        assert first.implementation == ember.implementation()
    finally:
        if ember.current() is not None:
            profile = ember.stop()
    assert isinstance(profile, Profile)
    assert not first.running
    assert ember.current() is None
    with pytest.raises(ProfilerStateError):
        ember.stop()
    try:
        third = ember.start(rate=200)
        assert third is not None and third is not first and third.running
    finally:
        ember.stop()


def test_stop_without_start_raises() -> None:
    assert ember.current() is None
    with pytest.raises(ProfilerStateError, match="not running"):
        ember.stop()


def test_disable_env_makes_start_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_DISABLE", "1")
    assert ember.start() is None
    assert ember.start(rate=10) is None
    assert ember.current() is None
    with pytest.raises(ProfilerStateError):
        ember.stop()
    try:  # keyword settings win over the environment, this one too
        sampler = ember.start(disable=False)
        assert sampler is not None and sampler.running
    finally:
        if ember.current() is not None:
            ember.stop()


def test_start_with_bad_setting_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="rate"):
        ember.start(rate=-1)
    monkeypatch.setenv("EMBER_RATE", "abc")
    with pytest.raises(ConfigError, match="EMBER_RATE"):
        ember.start()
    assert ember.current() is None


def profiled_work(sampler: Sampler) -> None:
    deadline = time.monotonic() + 10
    while sampler.stats()["samples"] < 5 and time.monotonic() < deadline:
        sum(range(2000))


def test_profile_block_sets_block_profile() -> None:
    with ember.profile(rate=200, budget=0) as block:
        assert block.profile is None
        assert block.sampler.running
        assert block.sampler.config.window == 0  # one window for the whole block
        profiled_work(block.sampler)
    assert not block.sampler.running
    assert isinstance(block.profile, Profile)
    assert block.profile.totals().samples >= 5
    names = {stat.frame.name for stat in block.profile.top_functions(50, by="total")}
    assert "profiled_work" in names
    assert ember.current() is None  # a block does not start the process-wide sampler


def test_profile_block_survives_an_exception() -> None:
    with pytest.raises(KeyError), ember.profile(rate=200, budget=0, mode="wall") as block:
        profiled_work(block.sampler)
        raise KeyError("application error")
    assert not block.sampler.running
    assert isinstance(block.profile, Profile)
    assert block.profile.totals().samples >= 5


def test_profile_block_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="mode"), ember.profile(mode="x"):
        pass  # pragma: no cover
