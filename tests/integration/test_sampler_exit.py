"""A sampler left running when the interpreter exits, or when the program ends by
a signal: the process ends as it would without ember, and no lowered switch
interval or sampler thread outlives it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

PROGRAM = textwrap.dedent("""
    import sys, threading, time
    import ember
    sampler = ember.Sampler(rate=500, budget=0).start()
    stop = False
    def burn():
        while not stop:
            sum(range(200))
    for _ in range(3):
        threading.Thread(target=burn, daemon=True).start()
    time.sleep(float(sys.argv[1]))
    print("stats", sampler.stats()["samples"] > 0, sampler.stats()["errors"], flush=True)
    if sys.argv[2] == "exit":
        sys.exit(7)
    time.sleep(60)
""")


def run(mode: str, python_env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PROGRAM, "0.5", mode], env=python_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_exit_with_a_running_sampler_and_busy_threads(python_env: dict[str, str]) -> None:
    for _ in range(3):  # the exit races the sampler taking the GIL: try it a few times
        proc = run("exit", python_env)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 7, err
        assert "stats True 0" in out
        assert "Fatal Python error" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_program_as_without_ember(sig: int,
                                                    python_env: dict[str, str]) -> None:
    proc = run("wait", python_env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "stats True 0" in line
    time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -sig  # an uncaught KeyboardInterrupt ends by SIGINT too
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    assert "Fatal Python error" not in err


SINK_PROGRAM = textwrap.dedent("""
    import sys, time
    import ember
    from ember import middleware
    class Printing:
        def window_sealed(self, window):
            print("window", window.summary.endpoints["GET /x"].requests, flush=True)
        def flush(self):
            print("flushed", flush=True)
    sampler = ember.Sampler(rate=100, window=0, sinks=[Printing()]).start()
    for _ in range(3):
        middleware.end(middleware.begin("GET", "GET /x"), 200)
    sys.exit(3)
""")


def test_at_exit_the_sinks_get_the_last_window(python_env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-c", SINK_PROGRAM], env=python_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == ["window 3", "flushed"], proc.stdout + proc.stderr
