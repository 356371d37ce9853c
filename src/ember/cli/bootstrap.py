"""Runs inside the program ``ember record`` starts: ``python -m ember.cli.bootstrap ...``.

It starts a sampler, runs the target as ``python`` would (script, ``-m
module`` or ``-c code``), and writes the profile when the program ends or
when ``--duration`` runs out, whichever comes first. Settings arrive as
``EMBER_RECORD_*`` variables, removed from the environment so that the
program's own children are not recorded.

The program ends as it would without ember, and its profile is written
however it ends, but by SIGKILL:

- by returning, ``sys.exit`` or an exception (``KeyboardInterrupt`` from
  Ctrl-C too): on the way out;
- by ``os._exit``: ``os._exit`` is wrapped to write the profile first;
- by SIGTERM, SIGHUP or SIGQUIT, where the program left the default action:
  a handler writes the profile, restores the default action and raises the
  signal again, so the exit status still says which signal ended it. A
  handler the program installs replaces ours.

Only the process ``ember record`` started writes it, never a fork of it. When
the profile is written, the status file (``EMBER_RECORD_STATUS``) receives
what was written and the sampler's figures: ``ember record`` reports from it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, NoReturn

from ember import formats
from ember._process import after_fork
from ember.cli.command import default_value
from ember.config import Config
from ember.errors import EmberError
from ember.profile import Frame
from ember.sampler import EmberThread, Sampler

_LAUNCHER_FILES = {__file__, runpy.__file__, "<frozen runpy>"}
# Signals whose default action ends the process without a Python exception:
# the profile is written first (SIGINT raises KeyboardInterrupt, left alone).
_ENDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT")
                        if hasattr(signal, name))


class _Recording:
    def __init__(self, output: str, sampler: Sampler, status: str | None = None) -> None:
        self.output = output
        self.sampler = sampler
        self.status = status
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self.done = threading.Event()

    def finish(self) -> bool:
        """Stop sampling and write the profile (and the status file), once.

        Only in the process ember started: a fork of it ends without writing.
        On the main thread, where Python runs signal handlers, a signal that
        comes while writing waits until the profile is written: run mid-write,
        a handler could raise or end the process and cut the writing short (a
        second Ctrl-C, say: ``ember record`` forwards what it gets, and a signal
        to the process group reaches both). The held signals are raised again
        then, but for SIGINT: returns whether one came.
        """
        if os.getpid() != self.pid:
            return False
        if threading.current_thread() is not threading.main_thread():
            self._write_once()
            return False
        came: list[int] = []
        held = {}
        for signum in (signal.SIGINT, *_ENDING_SIGNALS):
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                held[signum] = signal.signal(signum, lambda signum, frame: came.append(signum))
        try:
            self._write_once()
        finally:
            for signum, handler in held.items():
                signal.signal(signum, handler)
        for signum in dict.fromkeys(came):
            if signum != signal.SIGINT:
                signal.raise_signal(signum)
        return signal.SIGINT in came

    def _write_once(self) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.done.set()
            profile = self.sampler.stop().trim_roots(_is_launcher_frame)
            try:
                # an SVG or speedscope file holds one weight: CPU time when recorded
                formats.dump(profile, self.output, value=default_value([profile]))
            except EmberError as exc:
                print(f"ember record: could not write the profile: {exc}", file=sys.stderr)
                return
            if self.status:
                stats = self.sampler.stats()
                written = {"samples": profile.totals().samples, "stacks": len(profile.stacks)}
                with contextlib.suppress(OSError), open(self.status, "w") as f:
                    json.dump({"written": written, "rate": stats["rate"],
                               "asked": self.sampler.config.rate,
                               "budget": self.sampler.config.budget,
                               "samples": stats["samples"], "wakes": stats["wakes"],
                               "truthful": stats["truthful"]}, f)


def _is_launcher_frame(frame: Frame) -> bool:
    return frame.file in _LAUNCHER_FILES


def _finish_after(recording: _Recording, seconds: float) -> None:
    if not recording.done.wait(seconds):
        recording.finish()


def _show_progress(recording: _Recording) -> None:
    """Live samples and elapsed time on the terminal, once a second, until done."""
    started = time.monotonic()
    while not recording.done.wait(1.0):
        stats = recording.sampler.stats()
        sys.stderr.write(f"\rember: {stats['samples']} samples, {stats['rate']:.0f}/s, "
                         f"{time.monotonic() - started:.0f} s ")
        sys.stderr.flush()
    sys.stderr.write("\r\x1b[K")
    sys.stderr.flush()


class _Endings:
    """Writes the profile before the program ends by a signal or ``os._exit``."""

    def __init__(self, recording: _Recording) -> None:
        self.recording = recording
        self.real_exit = os._exit
        self.ending = False

    def install(self) -> None:
        for signum in _ENDING_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, self.on_signal)
        os._exit = self.exit
        after_fork(self.uninstall)

    def uninstall(self) -> None:
        """A fork of the program gets the default actions and the real ``os._exit``."""
        for signum in _ENDING_SIGNALS:
            if signal.getsignal(signum) == self.on_signal:
                signal.signal(signum, signal.SIG_DFL)
        if os._exit == self.exit:
            os._exit = self.real_exit

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.ending:  # the same signal again (forwarded, or sent to the group)
            return
        self.ending = True
        self.recording.finish()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        self.ending = False  # still alive: the signal is blocked; the program goes on

    def exit(self, status: int) -> NoReturn:
        with contextlib.suppress(Exception):
            self.recording.finish()
        self.real_exit(status)


def _run_target(argv: list[str]) -> None:
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        code = compile(argv[1], "<string>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    else:
        if not os.path.exists(argv[0]):
            print(f"{sys.executable}: can't open file {argv[0]!r}: No such file",
                  file=sys.stderr)
            raise SystemExit(2)
        sys.argv = list(argv)
        # By its absolute path, as `python script.py` runs it since 3.9 and as
        # py-spy names its frames: a function is spelled the same in both.
        path = os.path.abspath(argv[0])
        sys.path[0] = os.path.dirname(path)
        runpy.run_path(path, run_name="__main__")


def _settings() -> dict[str, Any]:
    return {key: os.environ.pop("EMBER_RECORD_" + key.upper(), None)
            for key in ("output", "rate", "mode", "duration", "budget", "status", "progress")}


def main() -> None:
    settings = _settings()
    rate, budget = settings["rate"], settings["budget"]
    # A development tool, like py-spy record: the rate asked, no budget unless given.
    config = Config.from_env(rate=float(rate) if rate else None, mode=settings["mode"],
                             window=0, max_windows=1, budget=float(budget) if budget else 0.0)
    recording = _Recording(settings["output"], Sampler(config).start(), settings["status"])
    # The last resort: a second Ctrl-C can interrupt the ending below before the
    # writing holds signals; the interpreter's exit then writes (before the
    # sampler's own exit hook, registered earlier, stops it).
    atexit.register(recording.finish)
    _Endings(recording).install()
    if settings["progress"]:
        EmberThread(target=_show_progress, args=(recording,), daemon=True,
                    name="ember-progress").start()
    if settings["duration"]:
        EmberThread(target=_finish_after, args=(recording, float(settings["duration"])),
                    daemon=True, name="ember-duration").start()
    try:
        _run_target(sys.argv[1:])
    except BaseException:
        recording.finish()  # a Ctrl-C while writing is dropped: the program is ending already
        raise
    if recording.finish():
        raise KeyboardInterrupt


if __name__ == "__main__":
    main()
