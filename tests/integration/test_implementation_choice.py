"""Which implementation runs: ``EMBER_PURE_PYTHON``, and the fallback with one
warning when a compiled module cannot be imported (fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(("pure", "expected"), [("1", "python"), (None, "cython"),
                                                ("0", "cython")])
def test_implementation_follows_ember_pure_python(
    python_env: dict[str, str], pure: str | None, expected: str,
) -> None:
    env = dict(python_env)
    env.pop("EMBER_PURE_PYTHON", None)
    if pure is not None:
        env["EMBER_PURE_PYTHON"] = pure
    code = ("import logging; logging.basicConfig(); import ember; "
            "print(ember.implementation(), ember.Sampler().implementation)")
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected, expected]
    assert "compiled extensions unavailable" not in result.stderr


def test_blocked_compiled_module_falls_back_with_one_warning(
    python_env: dict[str, str],
) -> None:
    env = dict(python_env)
    env.pop("EMBER_PURE_PYTHON", None)
    code = "\n".join([
        "import logging, sys",
        "logging.basicConfig()",
        "sys.modules['ember._capture'] = None",
        "import ember",
        "import ember.sampler",
        "from ember import _impl",
        "_impl.module(\"capture\")",
        "sampler = ember.Sampler(window=0, mode='wall')",
        "sampler.sample_once()",
        "print(ember.implementation(), sampler.implementation)",
    ])
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "python"]
    assert result.stderr.count("compiled extensions unavailable") == 1, result.stderr
    assert "WARNING:ember:" in result.stderr
