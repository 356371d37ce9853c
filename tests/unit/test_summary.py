"""Request summaries: buckets at their bounds, exact merges, the recorder across threads."""

from __future__ import annotations

import json
import threading

import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ember import metrics, middleware
from ember.summary import (
    BOUNDS_NS,
    BUCKETS,
    EndpointSummary,
    RequestRecorder,
    WindowSummary,
    bucket_of,
    merge,
)


def request(endpoint: str, wall_ns: int, cpu_ns: int | None = None, status: int = 200,
            gc_ns: int = 0) -> middleware.Request:
    """A finished request as ``middleware.end`` leaves it (``cpu_ns=None``: not measured)."""
    r = middleware.Request("GET", endpoint)
    r.duration_ns, r.status, r.gc_ns = wall_ns, status, gc_ns
    r.cpu_ns, r.cpu_source = (0, "") if cpu_ns is None else (cpu_ns, "thread")
    return r


def summary_of(requests: list[middleware.Request]) -> WindowSummary:
    recorder = RequestRecorder()
    for r in requests:
        recorder.observe(r)
    return WindowSummary(recorder.take())


# -- buckets ----------------------------------------------------------------------------
def test_buckets_hold_their_upper_bound_and_start_above_the_previous() -> None:
    assert list(BOUNDS_NS) == sorted(set(BOUNDS_NS)) and len(BOUNDS_NS) + 1 == BUCKETS
    assert bucket_of(0) == 0
    for i, bound in enumerate(BOUNDS_NS):
        assert bucket_of(bound) == i  # le: the bound itself is inside
        assert bucket_of(bound + 1) == i + 1
        assert bucket_of(bound - 1) == i
    assert bucket_of(60_000_000_001) == BUCKETS - 1
    assert bucket_of(10**18) == BUCKETS - 1


def test_bounds_extend_the_prometheus_buckets() -> None:
    """Every Prometheus bucket (client defaults, ember's request histograms) is a
    bound here, so a summary re-buckets into them exactly."""
    seconds = {b / 1e9 for b in BOUNDS_NS}
    default = [b for b in prometheus_client.Histogram.DEFAULT_BUCKETS if b != float("inf")]
    assert set(default) <= seconds
    assert set(metrics.REQUEST_BUCKETS) <= seconds
    assert BOUNDS_NS[0] == 100_000 and BOUNDS_NS[-1] == 60_000_000_000


def test_recorder_counts_a_request_into_the_buckets_of_its_wall_and_cpu() -> None:
    s = summary_of([request("GET /a", 5_000_000, 100_000),         # both on a bound
                    request("GET /a", 5_000_001, 100_001, 503),    # both just above
                    request("GET /a", 70_000_000_000, None, 500),  # above 60 s, no CPU
                    request("GET /a", 1, 0, 499, gc_ns=7)])
    e = s.endpoints["GET /a"]
    assert (e.requests, e.errors) == (4, 2)  # 5xx only
    assert e.wall_ns == 5_000_000 + 5_000_001 + 70_000_000_000 + 1
    assert e.cpu_ns == 200_001 and e.gc_ns == 7
    assert e.latency[BOUNDS_NS.index(5_000_000)] == 1
    assert e.latency[BOUNDS_NS.index(5_000_000) + 1] == 1
    assert e.latency[-1] == 1 and e.latency[0] == 1 and sum(e.latency) == 4
    assert e.cpu[0] == 2 and e.cpu[1] == 1 and sum(e.cpu) == 3  # measured ones only


def test_a_request_through_the_middleware_is_recorded_as_measured() -> None:
    recorder = RequestRecorder()
    middleware.OBSERVERS.append(recorder.observe)
    try:
        r = middleware.begin("POST", "POST /items")
        middleware.end(r, 201)
        unlabelled = middleware.begin("GET", "")
        middleware.end(unlabelled, 502)
    finally:
        middleware.OBSERVERS.remove(recorder.observe)
    assert r is not None and unlabelled is not None
    taken = recorder.take()
    assert set(taken) == {"POST /items", "other"}
    e = taken["POST /items"]
    assert (e.requests, e.errors, e.wall_ns, e.cpu_ns) == (1, 0, r.duration_ns, r.cpu_ns)
    assert r.duration_ns > 0 and r.duration_s == r.duration_ns / 1e9
    assert taken["other"].errors == 1
    assert recorder.take() == {}  # taken once


def test_recorder_is_exact_across_threads() -> None:
    recorder = RequestRecorder()
    taken: list[dict[str, EndpointSummary]] = []
    go = threading.Barrier(9)

    def worker(n: int) -> None:
        go.wait()
        for i in range(2000):
            recorder.observe(request(f"GET /e{i % 3}", 1000 + n, n, 500 if i % 10 == 0 else 200))

    def sealer() -> None:  # takes while the others record: no request lost or doubled
        go.wait()
        for _ in range(200):
            taken.append(recorder.take())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=sealer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken.append(recorder.take())
    total = merge(WindowSummary(t) for t in taken)
    assert total.requests == 8 * 2000
    assert sum(e.errors for e in total.endpoints.values()) == 8 * 200
    assert sum(e.wall_ns for e in total.endpoints.values()) == sum(
        2000 * (1000 + n) for n in range(8))
    assert sum(e.cpu_ns for e in total.endpoints.values()) == 2000 * sum(range(8))


# -- merge ------------------------------------------------------------------------------
requests_strategy = st.lists(
    st.builds(request,
              st.sampled_from(["GET /a", "POST /b", "other", "GET /c/{id}"]),
              st.integers(0, 100 * 10**9),
              st.none() | st.integers(0, 10 * 10**9),
              st.sampled_from([0, 200, 404, 499, 500, 503, 599]),
              st.integers(0, 10**8)),
    max_size=60)
gc_strategy = st.dictionaries(st.integers(0, 2),
                              st.tuples(st.integers(0, 1000), st.integers(0, 10**10)),
                              max_size=3)


@settings(max_examples=200, deadline=None)
@given(requests_strategy, st.data())
def test_merge_of_a_partition_is_the_whole(requests: list[middleware.Request],
                                           data: st.DataObject) -> None:
    parts = data.draw(st.integers(1, 6))
    owner = data.draw(st.lists(st.integers(0, parts - 1), min_size=len(requests),
                               max_size=len(requests)))
    gcs = data.draw(st.lists(gc_strategy, min_size=parts, max_size=parts))
    pieces = [summary_of([r for r, o in zip(requests, owner, strict=True) if o == p])
              for p in range(parts)]
    for piece, gc_of in zip(pieces, gcs, strict=True):
        piece.gc = gc_of
    whole = summary_of(requests)
    whole.gc = merge(WindowSummary(gc=g) for g in gcs).gc
    assert merge(pieces) == whole
    # commutative and associative: any order, any grouping
    order = data.draw(st.permutations(pieces))
    assert merge(order) == whole
    cut = data.draw(st.integers(0, parts))
    assert merge([merge(pieces[:cut]), merge(pieces[cut:])]) == whole
    # merging copies: the inputs are unchanged
    assert merge(pieces) == whole


@settings(max_examples=50, deadline=None)
@given(requests_strategy, gc_strategy)
def test_plain_data_round_trip(requests: list[middleware.Request],
                               gc_of: dict[int, tuple[int, int]]) -> None:
    s = summary_of(requests)
    s.gc = gc_of
    assert WindowSummary.from_dict(json.loads(json.dumps(s.as_dict()))) == s


def test_empty_summaries() -> None:
    assert not WindowSummary()
    assert WindowSummary(gc={0: (1, 10)})
    assert merge([]) == WindowSummary() and merge([WindowSummary()]) == WindowSummary()
    with pytest.raises(ValueError):  # histograms of other bounds do not merge
        EndpointSummary().add(EndpointSummary(latency=[0] * (BUCKETS - 1)))
