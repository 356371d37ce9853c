"""What the requests that finished in a window did, per endpoint, and its GC pauses.

Every sealed window carries a :class:`WindowSummary`: per endpoint label an
:class:`EndpointSummary` (requests, errors, wall, CPU and GC-pause sums, and
two histograms: latency and CPU per request), and per garbage-collector
generation the collections and their pause time.

Everything is an integer (counts and nanoseconds), so :func:`merge` is exact,
associative and commutative: summing the windows of several workers, or of an
hour, gives what one summary of all their requests would have held.

Histogram buckets are fixed, the same for latency and CPU, so that any two
histograms merge: :data:`BOUNDS_NS`, prometheus-client's default buckets
(5 ms to 10 s) extended in 1-2.5-5 steps down to 100 us (the CPU of a light
request), and up by 30 s (where ``ember.metrics.REQUEST_BUCKETS`` ends) to 60 s::

    100us 250us 500us 1ms 2.5ms 5ms 10ms 25ms 50ms 75ms 100ms 250ms 500ms 750ms
    1s 2.5s 5s 7.5s 10s 30s 60s +Inf

Bucket ``i`` counts the values ``v`` with ``BOUNDS_NS[i-1] < v <= BOUNDS_NS[i]``
(Prometheus' ``le``, not cumulative); the last counts those above 60 s. Since
the bounds hold every bound of both, a summary's histogram re-buckets exactly
into a histogram of prometheus-client's defaults or of ember's metrics.

A request counts as an error when its status is 5xx (an exception in the
application counts as 500; a client that went away, status 0, does not).
Its CPU counts only when it was measured (``cpu_source``): the CPU histogram
then holds fewer requests than ``requests``.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, Protocol

from ember.attribution import OTHER

BOUNDS_NS: tuple[int, ...] = (
    100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 75_000_000,
    100_000_000, 250_000_000, 500_000_000, 750_000_000,
    1_000_000_000, 2_500_000_000, 5_000_000_000, 7_500_000_000, 10_000_000_000,
    30_000_000_000, 60_000_000_000,
)
"""Upper bounds of the histogram buckets, in nanoseconds (see the module docstring)."""
BUCKETS = len(BOUNDS_NS) + 1
"""Buckets per histogram: one per bound and one above the last."""


def bucket_of(value_ns: int) -> int:
    """The bucket of ``value_ns``: the first whose bound is at least ``value_ns``."""
    return bisect_left(BOUNDS_NS, value_ns)


def _buckets() -> list[int]:
    return [0] * BUCKETS


@dataclasses.dataclass(slots=True)
class EndpointSummary:
    """The requests of one endpoint that finished in a window (all ints)."""

    requests: int = 0
    errors: int = 0
    """Requests that ended with a 5xx status."""
    wall_ns: int = 0
    cpu_ns: int = 0
    """CPU of the requests whose CPU was measured (``sum(cpu)`` of them)."""
    gc_ns: int = 0
    """Garbage-collector pauses during the requests (collections pause every thread)."""
    latency: list[int] = dataclasses.field(default_factory=_buckets)
    """Requests per wall-time bucket (:data:`BOUNDS_NS`)."""
    cpu: list[int] = dataclasses.field(default_factory=_buckets)
    """Requests per CPU-time bucket, of those whose CPU was measured."""

    def add(self, other: EndpointSummary) -> None:
        """Add ``other`` into this one."""
        self.requests += other.requests
        self.errors += other.errors
        self.wall_ns += other.wall_ns
        self.cpu_ns += other.cpu_ns
        self.gc_ns += other.gc_ns
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.cpu = [a + b for a, b in zip(self.cpu, other.cpu, strict=True)]

    def copy(self) -> EndpointSummary:
        return dataclasses.replace(self, latency=list(self.latency), cpu=list(self.cpu))


@dataclasses.dataclass
class WindowSummary:
    """The request summaries of a window, and its garbage-collector pauses."""

    endpoints: dict[str, EndpointSummary] = dataclasses.field(default_factory=dict)
    gc: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """Generation -> (collections, pause ns)."""

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.endpoints.values())

    def __bool__(self) -> bool:
        """Whether anything happened: a request finished or the collector ran."""
        return bool(self.endpoints) or bool(self.gc)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready, sorted); :meth:`from_dict` reads it back."""
        return {"endpoints": {name: dataclasses.asdict(self.endpoints[name])
                              for name in sorted(self.endpoints)},
                "gc": {str(gen): list(self.gc[gen]) for gen in sorted(self.gc)}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSummary:
        return cls({name: EndpointSummary(**e) for name, e in data["endpoints"].items()},
                   {int(gen): (int(c), int(ns)) for gen, (c, ns) in data["gc"].items()})


def merge(summaries: Iterable[WindowSummary]) -> WindowSummary:
    """One summary of all of ``summaries`` (new objects; the inputs are untouched)."""
    out = WindowSummary()
    for summary in summaries:
        for name, endpoint in summary.endpoints.items():
            into = out.endpoints.get(name)
            if into is None:
                out.endpoints[name] = endpoint.copy()
            else:
                into.add(endpoint)
        for gen, (count, pause_ns) in summary.gc.items():
            old = out.gc.get(gen, (0, 0))
            out.gc[gen] = (old[0] + count, old[1] + pause_ns)
    return out


class FinishedRequest(Protocol):
    """What :meth:`RequestRecorder.observe` reads of a request
    (:class:`ember.middleware.Request` is one)."""

    endpoint: str
    status: int
    duration_ns: int
    cpu_ns: int
    cpu_source: str
    gc_ns: int


class RequestRecorder:
    """Adds finished requests (from any thread) into the open window's summaries;
    :meth:`take` hands them over at sealing and starts anew.

    A request is in exactly one window: the one open when it was recorded. The
    lock is held for a dict lookup and a few additions (the buckets are found
    before).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget what was recorded (a new lock: also for a fork child)."""
        self._lock = threading.Lock()
        self._endpoints: dict[str, EndpointSummary] = {}

    def observe(self, request: FinishedRequest) -> None:
        """Record one finished request (a ``middleware.OBSERVERS`` observer)."""
        wall = request.duration_ns
        latency = bisect_left(BOUNDS_NS, wall)
        cpu = request.cpu_ns if request.cpu_source else -1
        cpu_bucket = bisect_left(BOUNDS_NS, cpu)
        endpoint = request.endpoint or OTHER
        error = request.status >= 500
        gc_ns = request.gc_ns
        with self._lock:
            summary = self._endpoints.get(endpoint)
            if summary is None:
                summary = self._endpoints[endpoint] = EndpointSummary()
            summary.requests += 1
            summary.errors += error
            summary.wall_ns += wall
            summary.gc_ns += gc_ns
            summary.latency[latency] += 1
            if cpu >= 0:
                summary.cpu_ns += cpu
                summary.cpu[cpu_bucket] += 1

    def take(self) -> dict[str, EndpointSummary]:
        """The summaries recorded since the last take (the recorder starts empty)."""
        with self._lock:
            taken, self._endpoints = self._endpoints, {}
        return taken

    def peek(self) -> dict[str, EndpointSummary]:
        """Copies of the summaries recorded since the last take."""
        with self._lock:
            return {name: e.copy() for name, e in self._endpoints.items()}


ENDPOINT_BYTES = (sys.getsizeof(EndpointSummary()) + 2 * sys.getsizeof(_buckets())
                  + 4 * sys.getsizeof(1 << 40) + 100)
"""Bytes one endpoint's summary holds: the object, its two bucket lists, its sums
(ints of their own) and its dict entry (the label string is the registry's)."""


def estimate_bytes(summary: WindowSummary) -> int:
    """Bytes ``summary`` holds (for the history's budget)."""
    return len(summary.endpoints) * ENDPOINT_BYTES + len(summary.gc) * 100


def histogram_quantile(q: float, buckets: list[int]) -> float | None:
    """The ``q`` quantile (0-1) in ns of a histogram over :data:`BOUNDS_NS`, as
    Prometheus' ``histogram_quantile`` estimates it: the bucket where the
    cumulative count reaches ``q`` of the total, interpolated linearly between
    its lower and upper bound (0 below the first); in the bucket above the last
    bound, that bound. ``None`` for an empty histogram."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(buckets):
        if below + count >= rank and count:
            if index == len(BOUNDS_NS):
                return float(BOUNDS_NS[-1])
            lower = BOUNDS_NS[index - 1] if index else 0
            return lower + (BOUNDS_NS[index] - lower) * (rank - below) / count
        below += count
    return float(BOUNDS_NS[-1])  # unreachable: the last non-empty bucket reaches the total
