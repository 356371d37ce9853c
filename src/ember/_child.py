"""Running a child program for ember's commands: signals passed on, never orphaned."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from types import FrameType
from typing import Any


class Forwarder:
    """Runs the program and passes on the signals ``ember record`` gets.

    ``translate`` maps a signal received to the one sent (py-spy writes its
    output on SIGINT, and only on SIGINT).

    SIGTERM, SIGHUP, SIGINT and SIGQUIT sent to ember go to the program, which
    writes its profile and ends (``ember record`` reports, then exits as it
    did). Installed as handlers, not ignored, so the program starts with the
    default actions (exec resets handled signals, not ignored ones); a signal
    ember's own caller ignores stays ignored for the program too. Ctrl-C and
    Ctrl-\\ from the terminal ember runs in the foreground of reach the program
    directly: they are not sent a second time (a second Ctrl-C means "now"
    to many servers).
    """

    def __init__(self, translate: dict[int, int] | None = None) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}
        self.translate = translate or {}

    def __enter__(self) -> Forwarder:
        for signum in FORWARDED:
            handler = signal.getsignal(signum)
            if handler != signal.SIG_IGN:
                self.previous[signum] = handler
                signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def run(self, argv: list[str],
            on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
            **popen: Any) -> int:
        """Run ``argv`` to its end; its exit code, 128 + N when signal N ended it.

        The program is never left running: should ember fail while it waits,
        the program is terminated (and killed if it lingers).
        """
        self.child = child = subprocess.Popen(argv, **popen)
        try:
            if on_start is not None:
                on_start(child)
            for signum in self.pending:  # came while the program was starting
                self._send(signum)
            code = child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        return code if code >= 0 else 128 - code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.child is None:
            self.pending.append(signum)
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        if signum in _KEYBOARD and _in_terminal_foreground():
            return
        assert self.child is not None
        with contextlib.suppress(ProcessLookupError):
            # a no-op once the program is reaped
            self.child.send_signal(self.translate.get(signum, signum))


FORWARDED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT")
                  if hasattr(signal, name))
"""The signals ``ember record`` passes on to the program it runs."""
_KEYBOARD = {getattr(signal, name) for name in ("SIGINT", "SIGQUIT") if hasattr(signal, name)}


def _in_terminal_foreground() -> bool:
    """Whether ember runs in the foreground of a terminal, which sends its Ctrl-C
    and Ctrl-\\ to the program as well (they share ember's process group)."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
    return False
