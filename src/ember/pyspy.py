"""py-spy as ember's out-of-process backend: attach to a pid, or run a command.

py-spy reads another process's memory (ptrace), so it needs no change to the
profiled program; ember runs it with ``--format raw --function
--full-filenames`` and reads the collapsed stacks into a Profile whose frames
are spelled as ember's own sampler spells them:

- Python frames are the same: ``co_qualname`` and ``co_firstlineno`` (the
  first decorator's line for a decorated function) in both. Without
  ``--function`` py-spy gives the executing line, as ember does with
  ``lines=True``. Files are absolute; an older in-process recording of
  ``python hot.py`` says ``hot.py``, which :func:`ember.frames.unify_files`
  matches when profiles are merged or compared.
- Native frames (``--native``) get line 0, so one C function is one frame
  (py-spy gives the line executing in its C source); an unnamed address
  becomes its library (``[libc.so.6]``), as the address changes every run;
  and the C frames on the root side of a stack's first Python frame (libc's
  start, the interpreter's main) are dropped, as the in-process sampler
  starts a stack at its first Python frame. Stacks with no Python frame (the
  collector at exit) are kept as they are.
- ``--subprocesses`` adds a ``process PID:"command"`` root frame per process;
  it is kept. Samples that caught no Python frame (a bare count) are dropped.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

from ember._child import FORWARDED, Forwarder
from ember.errors import EmberError, FormatError
from ember.formats import collapsed
from ember.frames import is_python
from ember.profile import Frame, Metadata, Profile

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
    if native:
        profile = as_in_process(profile)
    profile.meta = Metadata(start=started, duration=time.time() - started, period=1 / rate,
                            mode="wall" if idle else "cpu",
                            pids=(pid,) if pid is not None else ())
    return profile, code


_NATIVE = re.compile(r"^(.*) \(([^()]*)\)$", re.DOTALL)  # "SHA256_Update (/usr/lib/libcrypto.so.3)"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]+$")


def _native(frame: Frame) -> Frame:
    """A native frame as py-spy writes it, spelled as one function per frame."""
    name, file = frame.name, frame.file
    if not file and (match := _NATIVE.match(name)):
        name, file = match.group(1), match.group(2)
    if file == "?":
        file = ""
    if _ADDRESS.match(name):
        library = posixpath.basename(file)
        name = (library if library.startswith("[") else f"[{library}]") if library else "[unknown]"
    return Frame(name, file, 0)


def _is_process(frame: Frame) -> bool:
    return not frame.file and frame.name.startswith("process ")


def as_in_process(profile: Profile) -> Profile:
    """A profile read from py-spy's raw output, with its frames spelled as ember's
    in-process sampler spells them (see the module's doc)."""
    spelled = [frame if is_python(frame) or _is_process(frame) else _native(frame)
               for frame in profile.frames]
    python = [is_python(frame) for frame in profile.frames]
    out = Profile(profile.meta)
    frame_ids = [out.frame_id(frame) for frame in spelled]
    for (sid, labels), values in profile.values.items():
        stack = profile.stacks[sid]
        first = next((i for i, f in enumerate(stack) if python[f]), None)
        if first is not None:
            roots = [f for f in stack[:first] if _is_process(profile.frames[f])]
            stack = (*roots, *stack[first:])
        out.add_values(out.stack_id(tuple(frame_ids[f] for f in stack)), labels,
                       *values.astuple())
    return out


def _refused(errors: str) -> bool:
    lowered = errors.lower()
    return "permission denied" in lowered or "operation not permitted" in lowered


def _run_forwarding_stderr(argv: list[str]) -> tuple[int, str]:
    """Run py-spy, passing its progress display to a terminal, keeping its messages.

    A signal sent to ember reaches py-spy as SIGINT, on which py-spy writes
    what it sampled and ends the program it started (on SIGTERM it would leave
    both unwritten and running).
    """
    kept: list[bytes] = []
    readers: list[threading.Thread] = []

    def read_stderr(child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        reader = threading.Thread(target=_forward, args=(child.stderr, kept), daemon=True)
        reader.start()
        readers.append(reader)

    with Forwarder(translate=dict.fromkeys(FORWARDED, signal.SIGINT)) as forwarder:
        try:
            code = forwarder.run(argv, on_start=read_stderr, stderr=subprocess.PIPE)
        except OSError as exc:
            raise EmberError(f"cannot run py-spy: {exc.strerror or exc}") from None
    for reader in readers:
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
