"""Runs inside the program ``ember record`` starts: ``python -m ember.cli.bootstrap ...``.

It starts a sampler, runs the target as ``python`` would (script, ``-m
module`` or ``-c code``), and writes the profile when the program ends or
when ``--duration`` runs out, whichever comes first. The program's exit
status is left untouched. Settings arrive as ``EMBER_RECORD_*`` variables,
removed from the environment so that the program's own children are not
recorded.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading

from ember import formats
from ember.config import Config
from ember.profile import Frame
from ember.sampler import Sampler

_LAUNCHER_FILES = {__file__, runpy.__file__, "<frozen runpy>"}


class _Recording:
    def __init__(self, output: str, sampler: Sampler) -> None:
        self.output = output
        self.sampler = sampler
        self._lock = threading.Lock()
        self._done = False

    def finish(self) -> None:
        """Stop sampling and write the profile, once."""
        with self._lock:
            if self._done:
                return
            self._done = True
            profile = self.sampler.stop().trim_roots(_is_launcher_frame)
            formats.dump(profile, self.output)


def _is_launcher_frame(frame: Frame) -> bool:
    return frame.file in _LAUNCHER_FILES


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
    config = Config.from_env(rate=float(rate) if rate else None, mode=mode, window=0,
                             max_windows=1)
    recording = _Recording(output, Sampler(config).start())
    if duration:
        timer = threading.Timer(float(duration), recording.finish)
        timer.daemon = True
        timer.start()
    try:
        _run_target(sys.argv[1:])
    finally:
        recording.finish()


if __name__ == "__main__":
    main()
