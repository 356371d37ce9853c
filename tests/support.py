"""Helpers shared by the attribution tests, unit and integration (``import support``)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator

from ember import Profile
from ember.attribution import registry


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate a server the test started (kill it if it lingers); close its output."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()


def share_in(profile: Profile, function: str, endpoint: str) -> tuple[float, int]:
    """The share of ``function``'s samples that carry ``endpoint``, and their number."""
    total = inside = 0
    for stack, labels, values in profile.samples():
        if any(f.name == function for f in stack):
            total += values.samples
            inside += values.samples if ("endpoint", endpoint) in labels else 0
    assert total > 0, f"no samples of {function}"
    return inside / total, total


def endpoint_here() -> str | None:
    """The endpoint the sampler would give a sample of this thread (or task) now."""
    labels = registry.labels_of(threading.get_ident())
    return dict(labels).get("endpoint") if labels else None


class Hang(Exception):
    """What :func:`deadline` raises when the code under it does not answer in time."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Turns a hang (which a hypothesis deadline cannot interrupt) into a failure:
    SIGALRM after ``seconds`` raises :class:`Hang` in the main thread."""
    def expired(signum: int, frame: object) -> None:
        raise Hang(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
