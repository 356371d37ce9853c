"""``ember record`` and the ways a program ends: Ctrl-C, signals to ember, to the
program or to the whole process group, ``os._exit``, SIGKILL. Real processes,
real signals; each checks the profile file, the exit code and that no process
is left running."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ember

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def program(ending: str = "main()", seconds: float = 3, before_main: str = "") -> str:
    """A program that spins, prints its pid, spins on until a signal ends it (at
    most ``seconds`` more), then runs ``ending``."""
    return textwrap.dedent("""
        import os, signal, sys, time

        def spin(seconds):
            end = time.thread_time() + seconds
            while time.thread_time() < end:
                pass

        def main():
            spin(0.3)  # CPU time: sampled ~60 times at 200/s however loaded the machine
            print(os.getpid(), flush=True)
            deadline = time.monotonic() + {seconds}
            while time.monotonic() < deadline:
                spin(0.01)

    """).format(seconds=seconds) + textwrap.dedent(before_main) + textwrap.dedent(ending)


LOOP = program()


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie no one reaps does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Run:
    """An ``ember record`` in a session of its own, and the program it started."""

    def __init__(self, proc: subprocess.Popen[str], out: Path) -> None:
        self.proc = proc
        self.out = out
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), line + (proc.stderr.read() if proc.stderr else "")
        self.program = int(line)

    def kill(self, target: str, sig: int) -> None:
        if target == "group":
            os.killpg(self.proc.pid, sig)
        else:
            os.kill(self.proc.pid if target == "ember" else self.program, sig)

    def end(self) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


Start = Callable[..., Run]


@pytest.fixture
def record(tmp_path: Path, python_env: dict[str, str]) -> Iterator[Start]:
    """``record(source, output="out.txt")`` starts ``ember record`` on ``program``."""
    runs: list[Run] = []

    def start(source: str = LOOP, output: str = "out.txt") -> Run:
        script = tmp_path / "prog.py"
        script.write_text(source)
        out = tmp_path / output
        proc = subprocess.Popen(
            [sys.executable, "-m", "ember", "record", "-o", str(out), "--rate", "200", "--",
             sys.executable, str(script)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env,
            cwd=tmp_path, start_new_session=True)
        run = Run(proc, out)
        runs.append(run)
        return run

    yield start
    for run in runs:  # nothing outlives the test, whatever it found
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.program, signal.SIGKILL)
        run.proc.wait()


def spin_samples(out: Path) -> int:
    profile = ember.load(out)
    return sum(v.samples for stack, _, v in profile.samples()
               if any(f.name == "spin" for f in stack))


def wrote(err: str) -> int:
    lines = [ln for ln in err.splitlines() if ln.startswith("ember record: wrote ")]
    assert lines, err
    return int(lines[-1].split()[3])


def assert_recorded(run: Run, code: int, err: str, expected: int) -> None:
    assert code == expected, err
    assert not alive(run.program), "the program was left running"
    assert spin_samples(run.out) >= 10, err  # ~60 expected
    assert wrote(err) == ember.load(run.out).totals().samples


@pytest.mark.parametrize(("target", "sig"), [
    ("group", signal.SIGINT), ("group", signal.SIGTERM), ("group", signal.SIGHUP),
    ("ember", signal.SIGINT), ("ember", signal.SIGTERM), ("ember", signal.SIGHUP),
    ("ember", signal.SIGQUIT),
    ("program", signal.SIGINT), ("program", signal.SIGTERM), ("program", signal.SIGHUP),
])
def test_a_signal_ends_the_program_and_the_profile_is_written(
        record: Start, target: str, sig: int) -> None:
    run = record()
    run.kill(target, sig)
    code, err = run.end()
    assert_recorded(run, code, err, 128 + sig)
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err  # the program's own, as python prints it


@pytest.mark.parametrize("gap", [0.0, 0.0005, 0.002, 0.01])
def test_a_second_sigint_while_the_program_ends_still_writes_the_profile(
        record: Start, gap: float) -> None:
    """A SIGINT to the process group reaches the program, and ember passes its own
    on: two, close together. The second may land while the first one's
    KeyboardInterrupt is on its way out, before the profile is written."""
    run = record()
    run.kill("program", signal.SIGINT)
    time.sleep(gap)
    with contextlib.suppress(ProcessLookupError):
        run.kill("program", signal.SIGINT)
    code, err = run.end()
    assert_recorded(run, code, err, 128 + signal.SIGINT)


def test_a_handler_the_program_installs_replaces_ours(record: Start) -> None:
    run = record(program(before_main="""
        def on_term(signum, frame):
            print("handled", file=sys.stderr, flush=True)
            sys.exit(5)
        signal.signal(signal.SIGTERM, on_term)
    """))
    run.kill("ember", signal.SIGTERM)
    code, err = run.end()
    assert "handled" in err
    assert_recorded(run, code, err, 5)


def test_ctrl_c_on_a_terminal_reaches_the_program_once(
        tmp_path: Path, python_env: dict[str, str]) -> None:
    """The terminal sends Ctrl-C to its foreground group, ember and the program:
    ember must not send it a second time (a second Ctrl-C means "now")."""
    script, out = tmp_path / "prog.py", tmp_path / "out.txt"
    script.write_text(program("""
        try:
            main()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            try:
                time.sleep(0.5)
            except KeyboardInterrupt:
                print("interrupted again", flush=True)
            raise
    """))
    # The session leader takes the pty as its controlling terminal, then becomes ember.
    launcher = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "-m", "ember", "record", "-o", str(out), "--rate",
         "200", "--", sys.executable, str(script)],
        stdin=slave, stdout=slave, stderr=slave, env=python_env, cwd=tmp_path,
        start_new_session=True)
    os.close(slave)
    seen = b""

    def read_until(pattern: bytes, seconds: float) -> re.Match[bytes] | None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while (match := re.search(pattern, seen)) is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every end of the terminal closed
                    break
                if not chunk:
                    break
                seen += chunk
        return match

    try:
        pid_line = read_until(rb"(?<!\d)(\d+)\r\n", 20)  # maybe after a progress line
        assert pid_line, seen
        program_pid = int(pid_line.group(1))
        os.write(master, b"\x03")
        read_until(rb"ember record: [^\r\n]*\r\n", 20)
        code = proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert code == 130, text
    assert "interrupted" in text and "interrupted again" not in text, text
    assert not alive(program_pid)
    assert spin_samples(out) >= 10, text
    assert "ember record: wrote" in text, text


def test_a_signal_ignored_by_ember_s_caller_stays_ignored(
        tmp_path: Path, python_env: dict[str, str]) -> None:
    """``nohup``, or a background job of a script: the program inherits the same."""
    launcher = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    shown = ("import signal; h = signal.getsignal(signal.SIGINT); "
             "print('ignored' if h == signal.SIG_IGN else "
             "'default' if h is signal.default_int_handler else h)")
    out = tmp_path / "out.txt"
    ignored = subprocess.run([sys.executable, "-c", launcher, "-m", "ember", "record", "-o",
                              str(out), "--", sys.executable, "-c", shown],
                             capture_output=True, text=True, env=python_env, timeout=60)
    assert ignored.returncode == 0, ignored.stderr
    assert ignored.stdout.strip() == "ignored"
    default = subprocess.run([sys.executable, "-m", "ember", "record", "-o", str(out), "--",
                              sys.executable, "-c", shown],
                             capture_output=True, text=True, env=python_env, timeout=60)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "default"


STALE = "stale;frames 999\n"


def test_sigkill_leaves_an_earlier_file_as_it_was(record: Start, tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text(STALE)
    run = record()
    run.kill("program", signal.SIGKILL)
    code, err = run.end()
    assert code == 128 + signal.SIGKILL, err
    assert not alive(run.program)
    assert "no profile written" in err and "999" not in err, err
    assert run.out.read_text() == STALE


@pytest.mark.parametrize("output", ["out.txt", "out.svg"])
def test_os_exit_writes_the_profile_first(record: Start, tmp_path: Path, output: str) -> None:
    (tmp_path / output).write_text(STALE)
    run = record(program("main(); os._exit(4)", seconds=1), output)
    code, err = run.end()
    assert code == 4, err
    assert "999" not in err and "stale" not in run.out.read_text()
    if output.endswith(".txt"):
        assert_recorded(run, code, err, 4)
    else:
        assert run.out.read_text().lstrip().startswith(("<svg", "<?xml"))
        assert wrote(err) >= 10


@pytest.mark.parametrize("ending", ["os._exit(0)", "sys.exit(0)"])
def test_a_fork_of_the_program_does_not_write_the_profile(
        record: Start, tmp_path: Path, ending: str) -> None:
    """The fork ends after the program: were it to write, its profile would win."""
    run = record(program(f"""
        parent = os.getpid()
        if os.fork() == 0:
            with open("fork.pid", "w") as f:
                f.write(str(os.getpid()))
            for _ in range(300):  # until the program has ended
                if os.getppid() != parent:
                    break
                time.sleep(0.01)
            {ending}
        main()
    """, seconds=1))
    code, err = run.end()
    fork = int((tmp_path / "fork.pid").read_text())
    deadline = time.monotonic() + 10
    while alive(fork) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(fork)
    assert_recorded(run, code, err, 0)
