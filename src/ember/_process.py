"""The process ember lives in: its fork and exit hooks, its own threads, its pid.

One place for what every part would otherwise register for itself:

- :func:`after_fork` registers a function run in a fork child (in order of
  registration, each fault-isolated); the child first gets its threads' native
  ids repaired, the pid updated and no lowered GIL switch interval;
- :func:`at_exit` registers a function run at interpreter exit;
- :class:`EmberThread` marks ember's own threads (samplers, feeders,
  progress), which no sampler samples; :data:`sampler_idents` holds the
  sampler threads' idents while they run;
- :func:`pid` is the process id, kept current at fork (``os.getpid()`` is a
  system call), and injectable for tests that play several workers in one
  process (:func:`set_pid`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("ember")

sampler_idents: set[int] = set()
"""Idents of the running sampler threads: every sampler skips all of them."""

_after_fork: list[Callable[[], None]] = []
_at_exit: list[Callable[[], None]] = []
_pid = os.getpid()


class EmberThread(threading.Thread):
    """A thread of ember's own (samplers, feeders, timers): never sampled."""


def pid() -> int:
    """This process's id (kept current across forks; see :func:`set_pid`)."""
    return _pid


def set_pid(value: int | None = None) -> None:
    """Make :func:`pid` answer ``value`` (tests: several workers in one process);
    ``None``: the real pid again."""
    global _pid
    _pid = os.getpid() if value is None else value


def after_fork(function: Callable[[], None]) -> None:
    """Run ``function`` in every fork child, after ember's own repairs."""
    _after_fork.append(function)


def at_exit(function: Callable[[], None]) -> None:
    """Run ``function`` when the interpreter exits."""
    _at_exit.append(function)


def repair_native_id() -> None:
    """Give threads that kept their parent's native id across a fork their own.

    CPython 3.11 keeps the forking thread's native id in the child, so its CPU
    clock would be read from a thread of the parent. Repaired at fork when ember
    was imported before it, and when a sampler starts: a pre-forking server
    (gunicorn without ``--preload``) imports ember only in the worker. The main
    thread of a fork child is the forking thread, whose kernel id is the pid.
    """
    with contextlib.suppress(Exception):
        current = threading.current_thread()
        if current.native_id != threading.get_native_id() and hasattr(current, "_native_id"):
            current._native_id = threading.get_native_id()
        main, own = threading.main_thread(), os.getpid()
        if (main.native_id != own and hasattr(main, "_native_id")
                and not os.path.exists(f"/proc/self/task/{main.native_id}")
                and os.path.exists(f"/proc/self/task/{own}")):
            main._native_id = own


def _in_child() -> None:
    set_pid()
    sampler_idents.clear()
    repair_native_id()
    for name in ("ember._wake", "ember._wake_py"):  # no lowered switch interval in a child
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                module.after_fork_in_child()
    for function in list(_after_fork):
        try:
            function()
        except Exception:
            log.exception("ember: an after-fork hook failed (%s)", getattr(function, "__qualname__",
                                                                         function))


def _exiting() -> None:
    for function in list(_at_exit):
        with contextlib.suppress(Exception):
            function()


os.register_at_fork(after_in_child=_in_child)
atexit.register(_exiting)
