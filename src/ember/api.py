"""The process-wide profiler: ``start()``, ``stop()``, the sinks its windows go
to (``add_sink()``), and the ``profile()`` block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ember.config import Config
from ember.errors import ProfilerStateError
from ember.profile import Profile
from ember.sampler import Sampler
from ember.window import WindowSink

_lock = threading.Lock()
_global: Sampler | None = None
_sinks: list[WindowSink] = []


def start(**settings: Any) -> Sampler | None:
    """Start the process-wide sampler (settings as in :class:`ember.Config`).

    Returns the running sampler, or ``None`` when ``EMBER_DISABLE`` is set.
    Calling it again while it runs returns the running sampler unchanged.
    """
    global _global
    config = Config.from_env(**settings)
    if config.disable:
        return None
    with _lock:
        if _global is not None and _global.running:
            return _global
        _global = Sampler(config, sinks=_sinks).start()
        return _global


def stop() -> Profile:
    """Stop the process-wide sampler and return everything it holds."""
    global _global
    with _lock:
        sampler, _global = _global, None
    if sampler is None:
        raise ProfilerStateError("ember is not running; call ember.start() first")
    return sampler.stop()


def add_sink(sink: WindowSink) -> None:
    """Hand every window the process-wide sampler seals to ``sink``: the running
    sampler's from now on, and those of every sampler :func:`start` starts later."""
    with _lock:
        if not any(s is sink for s in _sinks):
            _sinks.append(sink)
        if _global is not None:
            _global.add_sink(sink)


def remove_sink(sink: WindowSink) -> None:
    with _lock:
        _sinks[:] = [s for s in _sinks if s is not sink]
        if _global is not None:
            _global.remove_sink(sink)


def current() -> Sampler | None:
    """The process-wide sampler if one is running."""
    sampler = _global
    return sampler if sampler is not None and sampler.running else None


class ProfileBlock:
    """What ``ember.profile()`` yields; ``profile`` is set when the block ends."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.profile: Profile | None = None


@contextmanager
def profile(**settings: Any) -> Iterator[ProfileBlock]:
    """Profile one block with its own sampler::

        with ember.profile(mode="wall") as block:
            work()
        print(block.profile.top_functions())
    """
    settings.setdefault("window", 0)
    sampler = Sampler(Config.from_env(**settings)).start()
    block = ProfileBlock(sampler)
    try:
        yield block
    finally:
        block.profile = sampler.stop()
