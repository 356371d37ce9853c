"""ember.metrics: names, types and labels as DESIGN.md says, fed exactly once
through its window sink."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ember import Sampler, api, attribution, autostart, metrics, middleware
from ember.profile import Frame, Metadata, Profile, make_labels
from ember.sampler import EmberThread
from ember.window import Window
from sampling import FakeClock, blocked_threads

DESIGN = {
    "ember_request_duration_seconds": ("histogram", {"endpoint", "method"}),
    "ember_request_cpu_seconds": ("histogram", {"endpoint", "method"}),
    "ember_function_self_seconds": ("counter", {"endpoint", "function"}),
    "ember_gc_pause_seconds": ("histogram", {"generation"}),
    "ember_samples": ("counter", {"kind"}),
    "ember_sampler_overhead_ratio": ("gauge", set()),
    "ember_sampler_interval_seconds": ("gauge", set()),
    "ember_stacks_truncated": ("counter", set()),
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sampler() -> Sampler:
    """A sampler that is never started: tests seal its windows by hand."""
    return Sampler(mode="wall", window=1.0, clock=FakeClock(), rng=random.Random(0))


@pytest.fixture
def installed(registry: CollectorRegistry, sampler: Sampler) -> Iterator[metrics.Metrics]:
    m = metrics.install(registry, top_k=2, sampler=sampler)
    try:
        yield m
    finally:
        m.close()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


F = {name: Frame(name, f"/srv/app/pkg/{name}.py", 10 + i)
     for i, name in enumerate(["main", "handler", "hot", "warm", "cool", "cold"])}


def window_profile(*, mode: str = "cpu", period: float = 0.01, truncated: int = 0,
                   cpu: bool = True) -> Profile:
    """/a: hot 5 s, warm 3 s, cool 1 s, cold 0.5 s; /b: cool 2 s; background: main 0.25 s."""
    p = Profile(Metadata(period=period, mode=mode, truncated=truncated))
    a = make_labels({"endpoint": "GET /a"})
    b = make_labels({"endpoint": "GET /b"})
    for leaf, secs, labels in [("hot", 5.0, a), ("warm", 3.0, a), ("cool", 1.0, a),
                               ("cold", 0.5, a), ("cool", 2.0, b)]:
        samples = int(secs * 100)
        p.add([F["main"], F["handler"], F[leaf]], samples=samples,
              cpu_ns=int(secs * 1e9) if cpu else 0, labels=labels)
    p.add([F["main"]], samples=25, cpu_ns=250_000_000 if cpu else 0,
          labels=make_labels({"endpoint": "background"}))
    return p


def as_window(profile: Profile) -> Window:
    frames = [tuple(f) for f in profile.frames]
    values = {key: list(v.astuple()) for key, v in profile.values.items()}
    return Window(profile.meta, frames, list(profile.stacks), values,  # type: ignore[arg-type]
                  sampler_stats={"overhead_ratio": 0.004, "interval": 0.01})


def test_names_types_and_labels_are_the_design_table(registry: CollectorRegistry,
                                                     installed: metrics.Metrics) -> None:
    req = middleware.Request("GET", "GET /a", duration_s=0.1, cpu_s=0.05)
    installed.observe_request(req)
    installed.update_from_window(window_profile())
    installed.gc_pause.labels("0").observe(0.001)
    installed.sink.window_sealed(as_window(window_profile()))
    assert installed.flush()
    found = {fam.name: fam for fam in registry.collect()}
    assert set(found) == set(DESIGN)
    for name, (kind, labels) in DESIGN.items():
        fam = found[name]
        assert fam.type == kind, name
        for sample in fam.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    text = generate_latest(registry).decode()
    for name in ["ember_function_self_seconds_total", "ember_samples_total",
                 "ember_stacks_truncated_total", "ember_request_duration_seconds_bucket"]:
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in text
        assert name in text


def test_default_registry_is_the_global_one() -> None:
    from prometheus_client import REGISTRY
    m = metrics.install()
    try:
        assert m.registry is REGISTRY
        assert metrics.install() is m
        assert "ember_samples" in {fam.name for fam in REGISTRY.collect()}
        assert any(s is m.sink for s in api._sinks)  # fed by every process-wide sampler
    finally:
        m.close()
    assert not any(s is m.sink for s in api._sinks)


def test_observer_fills_the_request_histograms(registry: CollectorRegistry,
                                               installed: metrics.Metrics) -> None:
    assert installed.observe_request in middleware.OBSERVERS
    request = middleware.begin("GET", "GET /items/{id}")
    deadline = time.thread_time() + 0.02
    while time.thread_time() < deadline:
        pass
    middleware.end(request, 200)
    labels = {"endpoint": "GET /items/{id}", "method": "GET"}
    assert value(registry, "ember_request_duration_seconds_count", **labels) == 1
    assert value(registry, "ember_request_cpu_seconds_count", **labels) == 1
    assert value(registry, "ember_request_cpu_seconds_sum", **labels) >= 0.015
    assert value(registry, "ember_request_duration_seconds_sum", **labels) >= 0.015
    # an asyncio request's CPU is not exact: latency only
    installed.observe_request(middleware.Request("POST", "POST /x", duration_s=0.2,
                                                 cpu_source=""))
    assert value(registry, "ember_request_duration_seconds_count",
                 endpoint="POST /x", method="POST") == 1
    assert registry.get_sample_value("ember_request_cpu_seconds_count",  # no empty series
                                     {"endpoint": "POST /x", "method": "POST"}) is None
    # a second request of each kind goes to the same (cached) series
    installed.observe_request(middleware.Request("POST", "POST /x", duration_s=0.1,
                                                 cpu_source=""))
    assert value(registry, "ember_request_duration_seconds_count",
                 endpoint="POST /x", method="POST") == 2


def test_update_from_window_gives_exact_counters_and_other(registry: CollectorRegistry,
                                                          installed: metrics.Metrics) -> None:
    metrics.update_from_window(window_profile(truncated=7), registry)
    name = "ember_function_self_seconds_total"
    hot, warm = metrics.function_label(F["hot"]), metrics.function_label(F["warm"])
    assert hot == "hot (pkg/hot.py:12)"
    assert value(registry, name, endpoint="GET /a", function=hot) == pytest.approx(5.0)
    assert value(registry, name, endpoint="GET /a", function=warm) == pytest.approx(3.0)
    assert value(registry, name, endpoint="GET /a", function="other") == pytest.approx(1.5)
    cool = metrics.function_label(F["cool"])
    assert value(registry, name, endpoint="GET /b", function=cool) == pytest.approx(2.0)
    assert value(registry, name, endpoint="GET /b", function="other") == 0
    main = metrics.function_label(F["main"])
    assert value(registry, name, endpoint="background", function=main) == pytest.approx(0.25)
    assert value(registry, "ember_samples_total", kind="cpu") == 500 + 300 + 100 + 50 + 200 + 25
    assert value(registry, "ember_stacks_truncated_total") == 7
    # a second window adds up
    installed.update_from_window(window_profile())
    assert value(registry, name, endpoint="GET /a", function=hot) == pytest.approx(10.0)


def test_without_cpu_times_samples_times_period(registry: CollectorRegistry,
                                                installed: metrics.Metrics) -> None:
    installed.update_from_window(window_profile(mode="wall", period=0.02, cpu=False))
    hot = metrics.function_label(F["hot"])
    assert value(registry, "ember_function_self_seconds_total",
                 endpoint="GET /a", function=hot) == pytest.approx(500 * 0.02)
    assert value(registry, "ember_samples_total", kind="wall") == 1175


def test_cardinality_is_bounded(registry: CollectorRegistry, sampler: Sampler) -> None:
    m = metrics.install(registry, top_k=3, sampler=sampler, max_endpoints=5)
    try:
        for round_ in range(30):  # the hot set shifts every window
            p = Profile(Metadata(period=0.01, mode="cpu"))
            for e in range(12):
                labels = make_labels({"endpoint": f"GET /e{e}"})
                for f in range(10):
                    frame = Frame(f"f{round_}_{f}", "/a/b/c.py", f)
                    p.add([frame], samples=1, cpu_ns=(f + 1) * 1_000_000, labels=labels)
            m.update_from_window(p)
        series = [s for fam in registry.collect() if fam.name == "ember_function_self_seconds"
                  for s in fam.samples if s.name.endswith("_total")]
        endpoints = {s.labels["endpoint"] for s in series}
        assert len(endpoints) == 6 and "other" in endpoints
        assert len(series) <= 6 * (2 * 3 + 1)
        total = sum(s.value for s in series)
        assert total == pytest.approx(30 * 12 * sum(range(1, 11)) / 1000)
        long = Frame("x" * 500, "/very/long/" + "d/" * 100 + "file.py", 3)
        assert len(metrics.function_label(long)) <= metrics.MAX_FUNCTION_LABEL
        assert metrics.function_label(long).endswith("d/file.py:3)")
    finally:
        m.close()


def test_installing_twice_is_harmless(registry: CollectorRegistry, sampler: Sampler) -> None:
    first = metrics.install(registry, sampler=sampler)
    try:
        assert metrics.install(registry, sampler=sampler) is first
        assert middleware.OBSERVERS.count(first.observe_request) == 1
        assert gc.callbacks.count(first._gc_callback) == 1
        assert sampler.sinks == [first.sink]
        first.observe_request(middleware.Request("GET", "GET /", duration_s=0.1))
        assert value(registry, "ember_request_duration_seconds_count",
                     endpoint="GET /", method="GET") == 1
    finally:
        first.close()
    assert first.observe_request not in middleware.OBSERVERS
    assert first._gc_callback not in gc.callbacks
    assert sampler.sinks == [] and not first.sink.running


def test_each_sealed_window_is_counted_once(registry: CollectorRegistry,
                                            installed: metrics.Metrics,
                                            sampler: Sampler) -> None:
    clock = sampler._clock
    assert isinstance(clock, FakeClock)
    with blocked_threads(1, "metrics-worker"):
        for _ in range(10):  # 2.5 s of fake time: two windows sealed, one open
            clock.advance(0.25)
            sampler.sample_once()
        assert installed.flush()
        assert installed.sink.handled == len(sampler.windows()) == 2
        assert value(registry, "ember_samples_total", kind="wall") == sum(
            w.profile().totals().samples for w in sampler.windows())
        final = sampler.stop()  # the open window is sealed and counted too
    assert installed.flush()
    assert installed.sink.handled == 3
    assert value(registry, "ember_samples_total", kind="wall") == final.totals().samples
    assert value(registry, "ember_sampler_interval_seconds") == pytest.approx(0.01)


def test_the_gauges_come_with_the_window(registry: CollectorRegistry,
                                         installed: metrics.Metrics) -> None:
    installed.sink.window_sealed(as_window(window_profile()))
    assert installed.flush()
    assert value(registry, "ember_sampler_overhead_ratio") == pytest.approx(0.004)
    assert value(registry, "ember_sampler_interval_seconds") == pytest.approx(0.01)


def test_sink_thread_is_an_ember_thread(installed: metrics.Metrics) -> None:
    assert installed.sink.running
    thread = installed.sink._thread
    assert isinstance(thread, EmberThread) and thread.daemon
    installed.close()
    assert not installed.sink.running


def test_faults_inside_metrics_never_propagate(registry: CollectorRegistry,
                                               installed: metrics.Metrics) -> None:
    broken = as_window(window_profile())
    broken.values = {(99, ()): [1, 2, 3]}  # a stack id that does not exist
    good = as_window(window_profile())
    installed.sink.window_sealed(broken)
    installed.sink.window_sealed(good)
    assert installed.flush()
    assert installed.errors == 1
    assert installed.sink.handled == 2 and installed.sink.errors == 0
    bad = middleware.Request("GET", "GET /", duration_s=0.1)
    bad.duration_s = "x"  # type: ignore[assignment]
    installed.observe_request(bad)
    assert installed.errors == 2
    hot = metrics.function_label(F["hot"])
    assert value(registry, "ember_function_self_seconds_total",
                 endpoint="GET /a", function=hot) == pytest.approx(5.0)
    # the gc hook records pauses, the sink's thread moves them into the histogram
    gc.collect()
    assert installed.flush()
    assert value(registry, "ember_gc_pause_seconds_count", generation="2") >= 1


def test_gc_pauses_move_without_windows(registry: CollectorRegistry,
                                        installed: metrics.Metrics) -> None:
    gc.collect()
    deadline = time.monotonic() + 10 * metrics.GC_FLUSH_SECONDS
    while value(registry, "ember_gc_pause_seconds_count", generation="2") < 1:
        assert time.monotonic() < deadline, "the sink's thread did not move the GC pauses"
        time.sleep(0.05)
    assert installed.sink.handled == 0


def test_real_sampler_feeds_the_hot_function(registry: CollectorRegistry) -> None:
    def burn_for_metrics_test(seconds: float) -> None:
        deadline = time.thread_time() + seconds
        while time.thread_time() < deadline:
            pass

    sampler = api.start(window=0.2, rate=200)
    assert sampler is not None
    m = metrics.install(registry, sampler=sampler)
    try:
        autostart.ensure_started(metrics=False)
        request = middleware.begin("GET", "GET /burn")
        burn_for_metrics_test(0.6)
        middleware.end(request, 200)
        time.sleep(0.3)
        assert m.flush()
        rows = {s.labels["function"]: s.value for fam in registry.collect()
                if fam.name == "ember_function_self_seconds" for s in fam.samples
                if s.name.endswith("_total") and s.labels["endpoint"] == "GET /burn"}
        top = max(rows, key=lambda f: rows[f])
        assert top.startswith("test_real_sampler_feeds_the_hot_function.<locals>."
                              "burn_for_metrics_test (unit/test_metrics.py:"), rows
        assert rows[top] > 0.3
        assert value(registry, "ember_sampler_interval_seconds") > 0
    finally:
        m.close()
        api.stop()
        attribution.registry.reset()
