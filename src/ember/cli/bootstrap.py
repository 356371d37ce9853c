"""Runs inside the program ``ember record`` starts: ``python -m ember.cli.bootstrap ...``.

It starts a sampler, runs the target as ``python`` would (script, ``-m
module`` or ``-c code``), and writes the profile when the program ends or
when ``--duration`` runs out, whichever comes first. The program's exit
status is left untouched. Settings arrive as ``EMBER_RECORD_*`` variables,
removed from the environment so that the program's own children are not
recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import threading
import time

from ember import formats
from ember.config import Config
from ember.profile import Frame
from ember.sampler import EmberThread, Sampler

_LAUNCHER_FILES = {__file__, runpy.__file__, "<frozen runpy>"}


class _Recording:
    def __init__(self, output: str, sampler: Sampler, status: str | None = None) -> None:
        self.output = output
        self.sampler = sampler
        self.status = status
        self._lock = threading.Lock()
        self.done = threading.Event()

    def finish(self) -> None:
        """Stop sampling and write the profile (and the sampler's figures), once."""
        with self._lock:
            if self.done.is_set():
                return
            self.done.set()
            profile = self.sampler.stop().trim_roots(_is_launcher_frame)
            formats.dump(profile, self.output)
            if self.status:
                stats = self.sampler.stats()
                with contextlib.suppress(OSError), open(self.status, "w") as f:
                    json.dump({"rate": stats["rate"], "asked": self.sampler.config.rate,
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
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


def main() -> None:
    output = os.environ.pop("EMBER_RECORD_OUTPUT")
    rate = os.environ.pop("EMBER_RECORD_RATE", None)
    mode = os.environ.pop("EMBER_RECORD_MODE", None)
    duration = os.environ.pop("EMBER_RECORD_DURATION", None)
    budget = os.environ.pop("EMBER_RECORD_BUDGET", None)
    status = os.environ.pop("EMBER_RECORD_STATUS", None)
    # A development tool, like py-spy record: the rate asked, no budget unless given.
    config = Config.from_env(rate=float(rate) if rate else None, mode=mode, window=0,
                             max_windows=1, budget=float(budget) if budget else 0.0)
    recording = _Recording(output, Sampler(config).start(), status)
    if os.environ.pop("EMBER_RECORD_PROGRESS", None):
        EmberThread(target=_show_progress, args=(recording,), daemon=True,
                    name="ember-progress").start()
    if duration:
        EmberThread(target=_finish_after, args=(recording, float(duration)), daemon=True,
                    name="ember-duration").start()
    try:
        _run_target(sys.argv[1:])
    finally:
        recording.finish()


if __name__ == "__main__":
    main()
