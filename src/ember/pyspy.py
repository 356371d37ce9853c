"""py-spy as ember's out-of-process backend: attach to a pid, or run a command.

py-spy reads another process's memory (ptrace), so it needs no change to the
profiled program; ember runs it with ``--format raw --function`` (collapsed
stacks, frames at their function's first line, as ember's own sampler writes
them) and reads the result into a Profile.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from ember.errors import EmberError, FormatError
from ember.formats import collapsed
from ember.profile import Metadata, Profile

PTRACE_HELP = (
    "py-spy was refused permission to read process {pid} (ptrace). Run ember as root, "
    "or grant py-spy the capability: sudo setcap cap_sys_ptrace+ep \"$(command -v py-spy)\", "
    "or allow ptrace of your own processes: echo 0 | sudo tee "
    "/proc/sys/kernel/yama/ptrace_scope; in Docker, start the container with "
    "--cap-add SYS_PTRACE"
)


def executable() -> str:
    """The py-spy program: on PATH, or beside this interpreter (a virtualenv)."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if found is None:
        raise EmberError("py-spy is not installed: pip install 'ember[pyspy]'")
    return found


def record(
    *,
    pid: int | None = None,
    command: list[str] | None = None,
    rate: float = 100.0,
    duration: float | None = None,
    native: bool = False,
    idle: bool = False,
    subprocesses: bool = False,
) -> tuple[Profile, int]:
    """Sample ``pid`` or ``command`` with py-spy; return the profile and py-spy's exit code."""
    if (pid is None) == (command is None):
        raise EmberError("give either a pid or a command to py-spy")
    if pid is not None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise EmberError(f"no process with pid {pid}") from None
        except PermissionError:
            pass  # exists, owned by someone else: py-spy will say whether it may attach
    with tempfile.TemporaryDirectory(prefix="ember-pyspy-") as tmp:
        raw = os.path.join(tmp, "raw.txt")
        argv = [executable(), "record", "--format", "raw", "--function", "--full-filenames",
                "--output", raw,
                "--rate", str(max(1, round(rate)))]
        if duration is not None:
            argv += ["--duration", str(max(1, round(duration)))]
        argv += [flag for flag, on in (("--native", native), ("--idle", idle),
                                       ("--subprocesses", subprocesses)) if on]
        argv += ["--pid", str(pid)] if pid is not None else ["--", *(command or [])]
        started = time.time()
        code, errors = _run_forwarding_stderr(argv)
        if _refused(errors):
            raise EmberError(PTRACE_HELP.format(pid=pid if pid is not None else "(command)"))
        if not os.path.exists(raw) or os.path.getsize(raw) == 0:
            last = errors.strip().splitlines()[-1:] or [f"exit code {code}"]
            raise EmberError(f"py-spy recorded nothing: {last[0]}")
        try:
            with open(raw, "rb") as stream:
                # py-spy writes samples that caught no Python frame as a bare count.
                kept = io.BytesIO(b"".join(ln for ln in stream if len(ln.split()) != 1))
            profile = collapsed.read(kept, raw)
        except FormatError as exc:
            raise EmberError(f"could not read py-spy's output: {exc}") from None
    profile.meta = Metadata(start=started, duration=time.time() - started, period=1 / rate,
                            mode="wall" if idle else "cpu",
                            pids=(pid,) if pid is not None else ())
    return profile, code


def _refused(errors: str) -> bool:
    lowered = errors.lower()
    return "permission denied" in lowered or "operation not permitted" in lowered


def _run_forwarding_stderr(argv: list[str]) -> tuple[int, str]:
    """Run py-spy, passing its progress display to a terminal, keeping its messages."""
    try:
        child = subprocess.Popen(argv, stderr=subprocess.PIPE)
    except OSError as exc:
        raise EmberError(f"cannot run py-spy: {exc.strerror or exc}") from None
    kept: list[bytes] = []
    assert child.stderr is not None
    reader = threading.Thread(target=_forward, args=(child.stderr, kept), daemon=True)
    reader.start()
    try:
        code = child.wait()
    except KeyboardInterrupt:  # py-spy got the Ctrl-C too and writes what it has
        code = child.wait()
    reader.join()
    return code, b"".join(kept).decode("utf-8", "replace")


def _forward(stream: IO[bytes], kept: list[bytes]) -> None:
    # py-spy's progress display is for a person at a terminal; elsewhere its
    # messages are only kept, and a failure is told in ember's one line.
    tty = sys.stderr.isatty() and hasattr(sys.stderr, "buffer")
    out = sys.stderr.buffer if tty else None
    while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
        kept.append(chunk)
        if out is not None:
            out.write(chunk)
            out.flush()
    del kept[:-64]  # enough to diagnose a failure
