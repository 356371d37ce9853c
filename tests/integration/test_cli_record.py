"""``ember record`` end to end: real child processes, real files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ember
from ember import Frame

WORKLOAD = textwrap.dedent("""
    import sys, time

    def spin(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    def main():
        spin(float(sys.argv[1]))
        sys.exit(int(sys.argv[2]))

    main()
""")


def ember_cli(*args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "work.py"
    path.write_text(WORKLOAD)
    return path


def test_records_a_script_and_passes_its_exit_code(
        tmp_path: Path, script: Path, python_env: dict[str, str]) -> None:
    out = tmp_path / "out.txt"
    result = ember_cli("record", "-o", str(out), "--rate", "200", "--",
                       sys.executable, str(script), "0.6", "3", env=python_env)
    assert result.returncode == 3, result.stderr
    assert "wrote" in result.stderr and "samples" in result.stderr
    profile = ember.load(out)
    spin = Frame("spin", str(script), 4)
    stats = {s.frame: s for s in profile.top_functions(by="total")}
    assert spin in stats
    # Nearly all CPU of the program is in spin(); the root is the script, not ember.
    assert stats[spin].total_value >= 0.8 * profile.totals().samples
    roots = {profile.frames[profile.stacks[sid][0]] for sid, _ in profile.values}
    assert roots == {Frame("<module>", str(script), 1)}
    assert not any("ember" in f.file for f in profile.frames)


def test_records_a_module_and_code(tmp_path: Path, script: Path,
                                  python_env: dict[str, str]) -> None:
    env = dict(python_env, PYTHONPATH=str(script.parent))
    out = tmp_path / "mod.txt"
    result = ember_cli("record", "-o", str(out), "--", "python", "-m", "work", "0.3", "0",
                       env=env)
    assert result.returncode == 0, result.stderr
    assert any(f.name == "spin" for f in ember.load(out).frames)

    out = tmp_path / "code.txt"
    code = ("import time\ndef burn():\n  e = time.thread_time() + 0.3\n"
            "  while time.thread_time() < e: pass\nburn()")
    result = ember_cli("record", "-o", str(out), "--mode", "wall", "--", sys.executable,
                       "-c", code, env=python_env)
    assert result.returncode == 0, result.stderr
    assert any(f.name == "burn" and f.file == "<string>" for f in ember.load(out).frames)


def test_duration_stops_recording_while_the_program_goes_on(
        tmp_path: Path, script: Path, python_env: dict[str, str]) -> None:
    out = tmp_path / "short.txt"
    result = ember_cli("record", "-o", str(out), "--duration", "0.3", "--rate", "100", "--",
                       sys.executable, str(script), "1.2", "0", env=python_env)
    assert result.returncode == 0, result.stderr
    samples = ember.load(out).totals().samples
    assert 5 <= samples <= 60  # ~30 expected in 0.3 s, far from the ~120 of the whole run


@pytest.mark.parametrize(("args", "message"), [
    (["record", "-o", "x.docx", "--", "python", "-c", "1"], "extension"),
    (["record", "-o", "x.txt"], "no program given"),
    (["record", "-o", "x.txt", "--rate", "-5", "--", "python", "-c", "1"], "rate"),
    (["record", "-o", "x.txt", "--duration", "0", "--", "python", "-c", "1"], "duration"),
    (["record", "-o", "x.txt", "--", "ls", "-l"], "not a Python interpreter"),
    (["record", "-o", "x.txt", "--", "python", "missing_script.py"], "cannot open"),
    (["record", "-o", "x.txt", "--mode", "bogus", "--", "python", "-c", "1"], "invalid choice"),
    (["record", "--", "python", "-c", "1"], "required"),
    (["nosuchverb"], "invalid choice"),
])
def test_user_errors_are_one_line_and_exit_2(
        tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_help_lists_verbs() -> None:
    result = ember_cli("--help")
    assert result.returncode == 0
    assert "record" in result.stdout
    result = ember_cli("record", "--help")
    assert result.returncode == 0 and "--duration" in result.stdout


def test_console_script_is_installed() -> None:
    ember_bin = Path(sys.executable).parent / "ember"
    result = subprocess.run([str(ember_bin), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "record" in result.stdout


def test_records_at_the_rate_asked_and_says_when_it_could_not(
        tmp_path: Path, script: Path, python_env: dict[str, str]) -> None:
    """A development tool, like py-spy record: no budget unless --budget is given."""
    out = tmp_path / "out.pb.gz"
    result = ember_cli("record", "-o", str(out), "--rate", "400", "--",
                       sys.executable, str(script), "1.0", "0", env=python_env)
    assert result.returncode == 0, result.stderr
    match = re.search(r"sampled (\d+) times a second \(asked 400\)", result.stderr)
    assert match, result.stderr
    if ember.implementation() == "cython":
        assert int(match.group(1)) >= 200  # a loaded CI machine still keeps most of it
        assert "far below" not in result.stderr
        assert ember.load(out).totals().samples >= 200
    else:  # waits for the GIL, handed over every 5 ms: at most ~200 a second, and says why
        assert "far below" not in result.stderr or "switch interval" in result.stderr
    # A budget no sampler can keep stretches the interval: the summary says so.
    starved = ember_cli("record", "-o", str(out), "--rate", "400", "--budget", "0.0001", "--",
                        sys.executable, str(script), "1.0", "0", env=python_env)
    assert starved.returncode == 0, starved.stderr
    assert "far below the asked rate" in starved.stderr
    assert "--budget 0 keeps the rate" in starved.stderr
    bad = ember_cli("record", "-o", str(out), "--budget", "2", "--",
                    sys.executable, str(script), "0.1", "0", env=python_env)
    assert bad.returncode == 2 and "budget" in bad.stderr and "Traceback" not in bad.stderr


def _unwritable_dir(tmp_path: Path) -> str:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return str(locked / "out.txt")
    if os.path.isdir("/proc"):
        return "/proc/out.txt"  # root writes anywhere a file system lets it; not in /proc
    pytest.skip("no directory root cannot write in")


@pytest.mark.parametrize("backend", ["ember", "py-spy", "pid"])
@pytest.mark.parametrize(("output", "message"), [
    ("missing/out.txt", "no such directory"),
    ("out.docx", "extension"),
    ("adir.txt", "is a directory"),
    ("UNWRITABLE", "cannot write in"),
])
def test_a_bad_output_is_refused_before_the_program_runs(
        tmp_path: Path, python_env: dict[str, str], backend: str, output: str,
        message: str) -> None:
    (tmp_path / "adir.txt").mkdir()
    if output == "UNWRITABLE":
        output = _unwritable_dir(tmp_path)
    marker = tmp_path / "ran"
    program = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    args = {"ember": program, "py-spy": ["--backend", "py-spy", *program],
            "pid": ["--pid", str(os.getpid())]}[backend]
    result = subprocess.run([sys.executable, "-m", "ember", "record", "-o", output, *args],
                            capture_output=True, text=True, cwd=tmp_path, env=python_env,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not marker.exists()  # checked before anything ran
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ember")] == []


def test_svg_output_reports_the_samples_written(
        tmp_path: Path, script: Path, python_env: dict[str, str]) -> None:
    out = tmp_path / "out.svg"
    result = ember_cli("record", "-o", str(out), "--rate", "200", "--",
                       sys.executable, str(script), "0.3", "0", env=python_env)
    assert result.returncode == 0, result.stderr
    match = re.search(r"wrote (\d+) samples \(\d+ stacks\) to ", result.stderr)
    assert match and int(match.group(1)) >= 10, result.stderr
    assert "<svg" in out.read_text()
    assert '"value":"cpu_ns"' in out.read_text()  # weighed by CPU, as the other verbs default


def test_a_script_s_frames_carry_its_absolute_path(
        tmp_path: Path, script: Path, python_env: dict[str, str]) -> None:
    """As ``python work.py`` names them since 3.9, and as py-spy does: merging or
    comparing the two then sees one function, not two."""
    out = tmp_path / "rel.txt"
    result = subprocess.run([sys.executable, "-m", "ember", "record", "-o", "rel.txt", "--",
                             sys.executable, "work.py", "0.3", "0"], capture_output=True,
                            text=True, cwd=tmp_path, env=python_env, timeout=60)
    assert result.returncode == 0, result.stderr
    files = {f.file for f in ember.load(out).frames}
    assert files == {str(script)}, files
