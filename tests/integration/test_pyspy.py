"""py-spy as the out-of-process backend, against real processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ember
from ember import pyspy

BUSY = textwrap.dedent("""
    import sys, time

    def crunch_numbers():
        x = 0
        for i in range(20000):
            x += i * i
        return x

    def serve_forever(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            crunch_numbers()

    print("ready", flush=True)
    serve_forever(float(sys.argv[1]))
""")

pytestmark = pytest.mark.skipif(
    shutil.which("py-spy", path=os.path.dirname(sys.executable)) is None
    and shutil.which("py-spy") is None, reason="py-spy is not installed ([pyspy] extra)")


@pytest.fixture
def busy_script(tmp_path: Path) -> Path:
    path = tmp_path / "busy.py"
    path.write_text(BUSY)
    return path


@pytest.fixture
def busy_process(busy_script: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, str(busy_script), "30"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    try:
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def ember_cli(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(user or []), sys.executable, "-m", "ember", *args],
                          capture_output=True, text=True, timeout=120)


def test_record_attaches_to_a_running_process(
        tmp_path: Path, busy_process: subprocess.Popen[str], busy_script: Path) -> None:
    out = tmp_path / "attached.txt"
    result = ember_cli("record", "--pid", str(busy_process.pid), "--duration", "1",
                       "--rate", "200", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert busy_process.poll() is None  # the process was only observed
    profile = ember.load(out)
    stats = {s.frame.name: s for s in profile.top_functions(by="total")}
    assert "crunch_numbers" in stats and "serve_forever" in stats
    crunch = stats["crunch_numbers"].frame
    assert crunch.file == str(busy_script) and crunch.line == 4  # the function's first line
    assert stats["serve_forever"].total_value >= 0.9 * profile.totals().samples


def test_record_runs_a_command_under_py_spy(tmp_path: Path, busy_script: Path) -> None:
    out = tmp_path / "command.txt"
    result = ember_cli("record", "--backend", "py-spy", "--rate", "200", "-o", str(out), "--",
                       sys.executable, str(busy_script), "1")
    assert result.returncode == 0, result.stderr
    names = {f.name for f in ember.load(out).frames}
    assert {"crunch_numbers", "serve_forever"} <= names


def test_profile_of_py_spy_raw_output_is_readable(
        tmp_path: Path, busy_process: subprocess.Popen[str]) -> None:
    raw = tmp_path / "raw.txt"
    subprocess.run([pyspy.executable(), "record", "--pid", str(busy_process.pid), "--duration",
                    "1", "--format", "raw", "-o", str(raw)], check=True, capture_output=True,
                   timeout=60)
    result = ember_cli("top", str(raw), "--json")
    assert result.returncode == 0, result.stderr
    assert any(row["function"] == "crunch_numbers" for row in json.loads(result.stdout))


def test_ptrace_refusal_says_how_to_grant_it(busy_process: subprocess.Popen[str],
                                            tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run ember as an unprivileged user")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=-all", "--bounding-set=-all"]
    # a directory the unprivileged user can write to (pytest's own are 0700 root's)
    writable = Path(tempfile.mkdtemp(prefix="ember-nobody-"))
    os.chmod(writable, 0o777)
    try:
        result = ember_cli("record", "--pid", str(busy_process.pid), "--duration", "1",
                           "-o", str(writable / "denied.txt"), user=nobody)
    finally:
        shutil.rmtree(writable, ignore_errors=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "permission" in lines[0] and "setcap cap_sys_ptrace" in lines[0]
    assert "ptrace_scope" in lines[0] and "SYS_PTRACE" in lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["record", "--pid", "999999", "-o", "x.txt"], "no process with pid 999999"),
    (["record", "--native", "-o", "x.txt", "--", "python", "-c", "1"], "--native needs py-spy"),
    (["record", "--pid", "1", "-o", "x.txt", "--", "python", "-c", "1"], "not both"),
    (["record", "--backend", "py-spy", "-o", "x.txt"], "no program given"),
])
def test_backend_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_wall_mode_includes_idle_process(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c",
                                "import time\ndef nap():\n  time.sleep(30)\nprint('ready', "
                                "flush=True)\nnap()"], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout is not None and sleeper.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        out = tmp_path / "idle.txt"
        result = ember_cli("record", "--pid", str(sleeper.pid), "--mode", "wall",
                           "--duration", "1", "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert "nap" in {f.name for f in ember.load(out).frames}
    finally:
        sleeper.kill()
        sleeper.wait()
        if sleeper.stdout is not None:
            sleeper.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_ember_ends_py_spy_s_recording_with_its_profile(
        busy_script: Path, tmp_path: Path, sig: int) -> None:
    """py-spy writes only on SIGINT: ember passes any of these on as SIGINT, so
    the profile is written and neither py-spy nor the program is left running."""
    out = tmp_path / "out.txt"
    ember_run = subprocess.Popen(
        [sys.executable, "-m", "ember", "record", "--backend", "py-spy", "-o", str(out), "--",
         sys.executable, str(busy_script), "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert ember_run.stdout is not None
        # py-spy may print its own banner on the same stdout first
        lines = iter(ember_run.stdout.readline, "")
        assert "ready" in (line.strip() for line in lines)
        time.sleep(1.5)  # py-spy samples the program meanwhile
        ember_run.send_signal(sig)
        _, err = ember_run.communicate(timeout=30)
        assert "wrote" in err, err
        profile = ember.load(out)
        assert any(f.name == "crunch_numbers" for stack, _, _ in profile.samples()
                   for f in stack), err
        # py-spy does not wait for the program it ends: allow it a moment, zombies aside
        deadline = time.monotonic() + 10
        while (left := session_processes(ember_run.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"left running: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ember_run.pid, signal.SIGKILL)
        ember_run.communicate()  # reaps it and closes its pipes


def session_processes(sid: int) -> list[str]:
    """The processes of session ``sid`` still running (not zombies)."""
    ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(sid)], capture_output=True,
                        text=True)
    return [line for line in ps.stdout.splitlines() if line.split()[1][:1] not in ("Z", "X")]
