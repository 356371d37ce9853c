"""What every framework middleware shares: register the request for
attribution, measure it, report it to observers (the running samplers' window
summaries, the Prometheus metrics). Starting ember is ``ember.autostart``'s.

A middleware calls :func:`begin` when a request starts and :func:`end` when it
is over (after the response body). Both are fault-isolated: an error inside
ember (an observer's included) is counted and logged once, and the request
goes on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ember.attribution import http_method
from ember.attribution import registry as requests
from ember.gcstats import pause_ns_total

log = logging.getLogger("ember")

Observer = Callable[["Request"], None]
OBSERVERS: list[Observer] = []
"""Called with every finished request, on the thread that ended it (a running
sampler registers its window summaries here, ``ember.metrics`` its histograms)."""

errors = 0
"""Failures inside ember's request handling (the requests themselves went on)."""


class Request:
    """One request as ember measures it (a plain slotted class: one is made per
    request, and a dataclass with default factories costs a microsecond)."""

    __slots__ = ("cpu_ns", "cpu_s", "cpu_source", "duration_ns", "duration_s", "endpoint",
                 "gc_ns", "gc_s", "method", "start_cpu_ns", "start_gc_ns", "start_ns",
                 "status", "task", "thread", "worker_cpu_ns")

    def __init__(self, method: str, endpoint: str = "", *,
                 task: asyncio.Task[Any] | None = None, thread: int = 0,
                 cpu_source: str = "thread", duration_s: float = 0.0,
                 cpu_s: float = 0.0, gc_s: float = 0.0, status: int = 0) -> None:
        self.method = method
        self.endpoint = endpoint
        """``METHOD /route/{template}``, capped (``other`` beyond ``max_endpoints``)."""
        self.task = task
        self.thread = thread
        self.start_ns = time.perf_counter_ns()
        # The thread's CPU clock is read only where it measures the request.
        self.start_cpu_ns = time.thread_time_ns() if cpu_source == "thread" else 0
        self.start_gc_ns = pause_ns_total()
        self.duration_s = duration_s
        self.duration_ns = round(duration_s * 1e9) if duration_s else 0
        """Wall time from :func:`begin` to :func:`end` (``duration_s`` in seconds)."""
        self.cpu_s = cpu_s
        self.cpu_ns = round(cpu_s * 1e9) if cpu_s else 0
        self.cpu_source = cpu_source
        """Where ``cpu_s`` comes from: ``thread`` (the thread's own CPU clock,
        sync requests), ``sampler`` (asyncio: the loop thread's CPU that the
        sampler credited to the request's task, cycle by cycle) or ``""``."""
        self.gc_s = gc_s
        self.gc_ns = round(gc_s * 1e9) if gc_s else 0
        """Collector pauses while the request ran (they stop every thread)."""
        self.status = status
        self.worker_cpu_ns: list[int] = []
        """CPU (ns) of each thread-pool call made for an asyncio request, measured
        with the worker thread's own clock (appended from the worker threads)."""

    def __repr__(self) -> str:
        return (f"<Request {self.endpoint!r} {self.status} {self.duration_s * 1e3:.1f} ms "
                f"cpu={self.cpu_s * 1e3:.1f} ms ({self.cpu_source or 'unknown'})>")


def _failed(what: str) -> None:
    """Count a failure inside ember and log the first; never raises itself."""
    global errors
    errors += 1
    if errors == 1:
        with contextlib.suppress(Exception):  # a broken logging setup must not fail a request
            log.exception("ember: %s failed (counted, logged once; the request goes on)", what)


def begin(method: str, endpoint: str, *, asyncio_task: bool = False) -> Request | None:
    """Register a request that starts now on this thread (or this asyncio task)."""
    try:
        method = http_method(method)  # clients choose methods: keep labels bounded
        labels = requests.labels(endpoint)
        if asyncio_task:
            task = asyncio.current_task()
            requests.enter_task(labels, task)
            return Request(method, endpoint, task=task,
                           cpu_source="sampler" if task is not None else "")
        requests.enter_thread(labels)
        return Request(method, endpoint, thread=threading.get_ident())
    except Exception:
        _failed("registering a request")
        return None


def relabel(request: Request | None, endpoint: str) -> None:
    """The route became known after routing: label the rest of the request with it."""
    if request is None or endpoint == request.endpoint:
        return
    try:
        request.endpoint = endpoint
        labels = requests.labels(endpoint)
        if request.task is not None:
            requests.enter_task(labels, request.task)
        else:
            requests.enter_thread(labels, request.thread)
    except Exception:
        _failed("labelling a request")


def end(request: Request | None, status: int = 0) -> None:
    """The request is over: unregister it, measure it, tell the observers."""
    if request is None:
        return
    try:
        if request.task is not None:
            cpu_ns = requests.exit_task(request.task) + sum(request.worker_cpu_ns)
        else:
            requests.exit_thread(request.thread)
            if request.thread == threading.get_ident():
                cpu_ns = time.thread_time_ns() - request.start_cpu_ns
            else:
                cpu_ns = 0
                request.cpu_source = ""
        request.cpu_ns, request.cpu_s = cpu_ns, cpu_ns / 1e9
        duration_ns = request.duration_ns = time.perf_counter_ns() - request.start_ns
        request.duration_s = duration_ns / 1e9
        gc_ns = request.gc_ns = pause_ns_total() - request.start_gc_ns
        request.gc_s = gc_ns / 1e9
        request.status = status
    except Exception:
        _failed("finishing a request")
        return
    for observer in list(OBSERVERS):  # a copy: observers come and go on other threads
        try:
            observer(request)
        except Exception:
            _failed("reporting a finished request")
