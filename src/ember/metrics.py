"""Prometheus metrics: request CPU/latency histograms and hot functions per endpoint.

:func:`install` creates, once per registry, the metrics of DESIGN.md
("Prometheus") with prometheus-client. They are plain Counter / Gauge /
Histogram objects only, so prometheus-client's multiprocess mode works:

=====================================  =========  ==========================
metric                                 type       labels
=====================================  =========  ==========================
``ember_request_duration_seconds``     histogram  endpoint, method
``ember_request_cpu_seconds``          histogram  endpoint, method
``ember_function_self_seconds_total``  counter    endpoint, function
``ember_gc_pause_seconds``             histogram  generation
``ember_samples_total``                counter    kind (cpu, wall)
``ember_sampler_overhead_ratio``       gauge
``ember_sampler_interval_seconds``     gauge
``ember_stacks_truncated_total``       counter
=====================================  =========  ==========================

Where the values come from:

- the request histograms from an observer in :data:`ember.middleware.OBSERVERS`
  (every request a middleware reports);
- the function counters, samples and truncation counters from the sealed
  windows: :attr:`Metrics.sink` is a window sink
  (:class:`ember.sinks.ThreadedSink`) of the process-wide sampler (present and
  future: :func:`ember.api.add_sink`), or of the ``sampler`` given; each window
  reaches it once, and its own thread (never sampled) turns it into the
  counters. The gauges come with the window (``Window.sampler_stats``, the
  sampler's health when it sealed the window), so they move once a window;
- the GC pauses from a ``gc.callbacks`` hook. The hook only appends to a
  bounded buffer (a collection may run while this very thread holds a metric's
  lock); the sink's thread moves the pauses into the histogram every
  :data:`GC_FLUSH_SECONDS` and at every window.

``ember_function_self_seconds_total`` counts, per endpoint, the self CPU
seconds (``cpu_ns``; ``samples * period`` when the window has no CPU times) of
that endpoint's ``top_k`` functions of each window; the rest goes to
``function="other"``. The function label is ``qualname (dir/file.py:line)``
(the last two path parts, at most :data:`MAX_FUNCTION_LABEL` characters). A
function keeps its label once it got one; each endpoint admits at most
``2 * top_k`` named functions and at most ``max_endpoints`` endpoints get their
own label (the rest ``endpoint="other"``), so the number of series is bounded
by ``max_endpoints * (2 * top_k + 1)``. Samples outside any request are
labelled ``endpoint="background"``.

Nothing that fails in here reaches the application: errors are counted
(:attr:`Metrics.errors`) and logged once.

Exposing ``/metrics``
---------------------

One process (no gunicorn workers)::

    import ember, ember.metrics, prometheus_client
    ember.start()
    ember.metrics.install()
    # WSGI: mount next to your app (e.g. werkzeug DispatcherMiddleware)
    metrics_app = prometheus_client.make_wsgi_app()
    # ASGI (Starlette / FastAPI):
    app.mount("/metrics", prometheus_client.make_asgi_app())
    # or a separate port, served from a thread:
    prometheus_client.start_http_server(9100)

Several worker processes (gunicorn): prometheus-client's multiprocess mode.
Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory *before* the app (and
prometheus_client) is imported, e.g. ``PROMETHEUS_MULTIPROC_DIR=/run/app-metrics
gunicorn -c gunicorn.conf.py app:app``; every worker writes its values there.
``/metrics`` is then served from a fresh registry that aggregates the files::

    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    def metrics_view():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)      # content type: CONTENT_TYPE_LATEST

(``make_wsgi_app(registry)`` / ``make_asgi_app(registry)`` with that registry
work too.) In ``gunicorn.conf.py``, tell prometheus-client when a worker
exits, so its live gauges disappear::

    from prometheus_client import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)

Empty the directory between runs of the server. In multiprocess mode the
counters and histograms are summed over the workers (no ``pid`` label); the two
sampler gauges report the highest value over the live workers (``livemax``).
With ``gunicorn --preload`` the sink's thread is restarted in every worker
after the fork.
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ember import _process, api, middleware
from ember.attribution import BACKGROUND, OTHER
from ember.profile import Frame, Profile
from ember.sampler import Sampler
from ember.sinks import ThreadedSink
from ember.window import Window

log = logging.getLogger("ember")

MAX_FUNCTION_LABEL = 200
"""Longest ``function`` label value (longer ones are cut, keeping the location)."""
GC_FLUSH_SECONDS = 1.0
"""How often the sink's thread moves the buffered GC pauses into the histogram."""
GC_BUFFER = 10_000
"""GC pauses held between two moves at most (the oldest are dropped)."""
MAX_REQUEST_CHILDREN = 4096
"""Cached histogram children per (endpoint, method); beyond, the cache starts over."""

def _child(cache: dict[tuple[str, str], Any], histogram: Histogram,
           key: tuple[str, str]) -> Any:
    """``histogram.labels(*key)``, kept in ``cache`` (which starts over when full)."""
    if len(cache) >= MAX_REQUEST_CHILDREN:
        cache.clear()
    child = cache[key] = histogram.labels(*key)
    return child


REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)
GC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
              0.1, 0.25, 1.0)

_lock = threading.Lock()
_installed: dict[int, Metrics] = {}  # id(registry) -> metrics (registry kept alive by it)


def function_label(frame: Frame) -> str:
    """``qualname (dir/file.py:line)``: short, bounded and still unambiguous enough."""
    if not frame.file and not frame.line:
        name = frame.name
    else:
        parts = frame.file.replace("\\", "/").split("/")
        name = f"{frame.name} ({'/'.join(parts[-2:])}:{frame.line})"
    if len(name) > MAX_FUNCTION_LABEL:
        keep = MAX_FUNCTION_LABEL - 3
        name = name[: keep // 2] + "..." + name[-(keep - keep // 2):]
    return name


class Metrics:
    """The ember metrics of one registry; made by :func:`install`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        top_k: int = 10,
        sampler: Sampler | None = None,
        max_endpoints: int = 100,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        self.registry = registry
        self.top_k = top_k
        self.max_functions = 2 * top_k
        self.max_endpoints = max_endpoints
        self.errors = 0
        self._sampler = sampler
        self._update_lock = threading.Lock()
        self._admitted: dict[str, set[str]] = {}
        self.sink = ThreadedSink(self.handle_window, name="ember-metrics",
                                 tick=GC_FLUSH_SECONDS, on_tick=self._flush_gc_safely)
        """The window sink feeding these metrics (its thread is never sampled)."""
        self._gc_pauses: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=GC_BUFFER)
        self._gc_started = 0.0
        # (endpoint, method) -> each request histogram's child: labels() costs more
        # than observe(). Bounded: endpoints are capped and methods normalised.
        self._duration_children: dict[tuple[str, str], Any] = {}
        self._cpu_children: dict[tuple[str, str], Any] = {}

        request_labels = ("endpoint", "method")
        self.request_duration = Histogram(
            "ember_request_duration_seconds", "Request latency (wall clock) per endpoint.",
            request_labels, registry=registry, buckets=REQUEST_BUCKETS)
        self.request_cpu = Histogram(
            "ember_request_cpu_seconds", "CPU time of the request's thread per endpoint.",
            request_labels, registry=registry, buckets=REQUEST_BUCKETS)
        self.function_self = Counter(
            "ember_function_self_seconds_total",
            f"Self CPU seconds of the top {top_k} functions per endpoint (rest: other).",
            ("endpoint", "function"), registry=registry)
        self.gc_pause = Histogram(
            "ember_gc_pause_seconds", "Garbage-collector pauses per generation.",
            ("generation",), registry=registry, buckets=GC_BUCKETS)
        self.samples = Counter(
            "ember_samples_total", "Stack samples taken by the ember sampler.",
            ("kind",), registry=registry)
        self.overhead = Gauge(
            "ember_sampler_overhead_ratio",
            "CPU time of the sampler thread over elapsed time.",
            registry=registry, multiprocess_mode="livemax")
        self.interval = Gauge(
            "ember_sampler_interval_seconds", "Current mean sampling interval.",
            registry=registry, multiprocess_mode="livemax")
        self.truncated = Counter(
            "ember_stacks_truncated_total",
            "Samples folded into [truncated] because the stack table was full.",
            registry=registry)

    # -- faults -------------------------------------------------------------------
    def _failed(self, what: str) -> None:
        self.errors += 1
        if self.errors == 1:
            log.exception("ember: metrics: %s failed (counted, logged once)", what)

    # -- requests -----------------------------------------------------------------
    def observe_request(self, request: middleware.Request) -> None:
        """The middleware observer: one finished request into the histograms."""
        try:
            key = (request.endpoint or OTHER, request.method)
            duration = self._duration_children.get(key)
            if duration is None:
                duration = _child(self._duration_children, self.request_duration, key)
            duration.observe(request.duration_s)
            if request.cpu_source:
                cpu = self._cpu_children.get(key)
                if cpu is None:
                    cpu = _child(self._cpu_children, self.request_cpu, key)
                cpu.observe(request.cpu_s)
        except Exception:
            self._failed("observing a request")

    # -- garbage collector -------------------------------------------------------
    def _gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        try:
            if phase == "start":
                self._gc_started = time.perf_counter()
            elif self._gc_started:
                self._gc_pauses.append((int(info.get("generation", 2)),
                                        time.perf_counter() - self._gc_started))
                self._gc_started = 0.0
        except Exception:  # pragma: no cover - a gc callback must never raise
            self.errors += 1

    def flush_gc(self) -> None:
        """Move the pauses recorded since the last flush into the histogram."""
        while True:
            try:
                generation, seconds = self._gc_pauses.popleft()
            except IndexError:
                return
            self.gc_pause.labels(str(generation)).observe(seconds)

    # -- windows ------------------------------------------------------------------
    def _endpoint_label(self, endpoint: str) -> str:
        if endpoint in self._admitted:
            return endpoint
        if len(self._admitted) >= self.max_endpoints:
            return OTHER
        self._admitted[endpoint] = set()
        return endpoint

    def update_from_window(self, window_profile: Profile) -> None:
        """Add one sealed window: per endpoint, its top-K functions' self seconds
        (the rest to ``other``), its samples and its truncated samples."""
        with self._update_lock:
            self._update(window_profile)

    def _update(self, profile: Profile) -> None:
        meta = profile.meta
        use_cpu = any(v.cpu_ns for v in profile.values.values())
        per_sample = meta.period if meta.period > 0 else 0.0
        by_endpoint: dict[str, dict[int, float]] = {}
        total_samples = 0
        for (sid, labels), values in profile.values.items():
            total_samples += values.samples
            stack = profile.stacks[sid]
            if not stack:
                continue
            seconds = values.cpu_ns / 1e9 if use_cpu else values.samples * per_sample
            if seconds <= 0:
                continue
            endpoint = dict(labels).get("endpoint") or BACKGROUND
            tally = by_endpoint.setdefault(endpoint, {})
            tally[stack[-1]] = tally.get(stack[-1], 0.0) + seconds
        for endpoint, tally in by_endpoint.items():
            label = self._endpoint_label(endpoint)
            admitted = self._admitted.setdefault(label, set())
            other = 0.0
            for rank, (fid, seconds) in enumerate(
                    sorted(tally.items(), key=lambda item: (-item[1], profile.frames[item[0]]))):
                name = function_label(profile.frames[fid])
                if rank < self.top_k and name != OTHER and (
                        name in admitted or len(admitted) < self.max_functions):
                    admitted.add(name)
                    self.function_self.labels(label, name).inc(seconds)
                else:
                    other += seconds
            if other > 0:
                self.function_self.labels(label, OTHER).inc(other)
        if total_samples:
            kind = meta.mode if meta.mode in ("cpu", "wall") else "cpu"
            self.samples.labels(kind).inc(total_samples)
        if meta.truncated:
            self.truncated.inc(meta.truncated)

    def handle_window(self, window: Window) -> None:
        """One sealed window into the counters, the gauges and (first) the GC
        pauses; on the sink's thread. Never raises."""
        self._flush_gc_safely()
        try:
            self.update_from_window(window.profile())
        except Exception:
            self._failed("reading a sealed window")
        try:
            stats = window.sampler_stats
            if "overhead_ratio" in stats:
                self.overhead.set(float(stats["overhead_ratio"]))
            if "interval" in stats:
                self.interval.set(float(stats["interval"]))
        except Exception:
            self._failed("setting the sampler gauges")

    def _flush_gc_safely(self) -> None:
        try:
            self.flush_gc()
        except Exception:
            self._failed("recording GC pauses")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the windows handed to :attr:`sink` are counted, and move the
        GC pauses recorded so far (tests; a clean shutdown). Returns whether all were."""
        done = self.sink.wait(timeout)
        self._flush_gc_safely()
        return done

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> Metrics:
        """Hook into the middleware, the collector and the sampler's windows."""
        if self.observe_request not in middleware.OBSERVERS:
            middleware.OBSERVERS.append(self.observe_request)
        if self._gc_callback not in gc.callbacks:
            gc.callbacks.append(self._gc_callback)
        if self._sampler is not None:
            self._sampler.add_sink(self.sink)
        else:
            api.add_sink(self.sink)
        self.sink.start()
        return self

    def close(self) -> None:
        """Unhook and stop feeding (the metrics stay registered)."""
        while self.observe_request in middleware.OBSERVERS:
            middleware.OBSERVERS.remove(self.observe_request)
        while self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        if self._sampler is not None:
            self._sampler.remove_sink(self.sink)
        else:
            api.remove_sink(self.sink)
        self.sink.stop()

    def _after_fork_in_child(self) -> None:
        self._update_lock = threading.Lock()
        self._gc_pauses.clear()
        self._gc_started = 0.0


def install(
    registry: CollectorRegistry | None = None,
    *,
    top_k: int = 10,
    sampler: Sampler | None = None,
    max_endpoints: int = 100,
) -> Metrics:
    """Create ember's metrics in ``registry`` (default: prometheus_client.REGISTRY),
    register the request observer and the window sink (on ``sampler``, else on
    the process-wide sampler, now and after every restart).

    Idempotent: a second call for the same registry returns the metrics already
    installed there (restarted if they were closed; other arguments are ignored).
    """
    target = REGISTRY if registry is None else registry
    with _lock:
        existing = _installed.get(id(target))
        if existing is not None:
            return existing.start()
        metrics = Metrics(target, top_k=top_k, sampler=sampler, max_endpoints=max_endpoints)
        _installed[id(target)] = metrics
    return metrics.start()


def installed(registry: CollectorRegistry | None = None) -> Metrics | None:
    """The metrics installed in ``registry`` (default: the global registry), if any."""
    return _installed.get(id(REGISTRY if registry is None else registry))


def update_from_window(window_profile: Profile, registry: CollectorRegistry | None = None) -> None:
    """Feed one sealed window's profile to the metrics installed in ``registry``."""
    metrics = installed(registry)
    if metrics is None:
        raise LookupError("ember.metrics.install() has not been called for this registry")
    metrics.update_from_window(window_profile)


def _after_fork_in_child() -> None:
    for metrics in list(_installed.values()):  # (their sinks' threads restart by themselves)
        try:
            metrics._after_fork_in_child()
        except Exception:
            log.exception("ember: could not reset the metrics after fork")


_process.after_fork(_after_fork_in_child)
