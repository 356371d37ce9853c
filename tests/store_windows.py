"""Synthetic sealed windows of realistic shape for the store tests and benchmark
(``import store_windows``): real :class:`~ember.window.Window` objects, as the
sampler seals them, built from a seeded random generator.

A service has a pool of functions; each endpoint has a handful of hot call
paths through them; a window holds ~``rows`` (stack, labels) rows, the request
summaries of its endpoints and GC pauses per generation, with ``meta.gc`` in
seconds as the sampler derives it from the summary's nanoseconds.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable

from ember.gcstats import as_seconds
from ember.profile import Labels, Metadata, Profile, merge
from ember.store import QueryResult
from ember.summary import BUCKETS, EndpointSummary, WindowSummary, bucket_of
from ember.summary import estimate_bytes as summary_bytes
from ember.summary import merge as merge_summaries
from ember.window import Frame, Values, Window, estimate_bytes

ENDPOINTS = ("GET /items/{item_id}", "POST /orders", "GET /health", "GET /search",
             "PUT /users/{user_id}", "GET /reports/{report_id}")
FUNCTIONS = [(f"module{m}.func{f}", f"/srv/app/module{m}.py", 10 + 7 * f)
             for m in range(40) for f in range(12)]  # 480 functions
PATHS = 40
"""Hot call paths per endpoint."""


def window(start: float, *, pid: int = 1000, seed: int | None = None, rows: int = 150,
           duration: float = 10.0, service: str = "shop", version: str = "1.0",
           host: str = "web-1", endpoints: Iterable[str] = ENDPOINTS) -> Window:
    """One window of ``pid`` opening at ``start`` with about ``rows`` value rows."""
    rng = random.Random(hash((start, pid)) if seed is None else seed)
    names = list(endpoints)
    frames: list[Frame] = []
    frame_ids: dict[Frame, int] = {}
    stacks: list[tuple[int, ...]] = []
    stack_ids: dict[tuple[int, ...], int] = {}
    values: Values = {}
    r = rng.random  # (the fastest draw: windows are built by the thousand)
    path_sids: dict[tuple[str, int], int] = {}
    for _ in range(rows):
        endpoint = names[int(r() * len(names))]
        path = int(r() * PATHS)
        sid = path_sids.get((endpoint, path), -1)
        if sid < 0:
            stack = []
            for frame in _paths(endpoint)[path]:
                fid = frame_ids.get(frame)
                if fid is None:
                    fid = frame_ids[frame] = len(frames)
                    frames.append(frame)
                stack.append(fid)
            key = tuple(stack)
            sid = stack_ids.get(key, -1)
            if sid < 0:
                sid = stack_ids[key] = len(stacks)
                stacks.append(key)
            path_sids[(endpoint, path)] = sid
        labels: Labels = (("endpoint", endpoint), ("thread", _THREADS[int(r() * 4)]))
        samples = 1 + int(r() * 40)
        row = values.setdefault((sid, labels), [0, 0, 0])
        row[0] += samples
        row[1] += samples * (1_000_000 + int(r() * 11_000_000))
        row[2] += samples * 10_000_000
    summary = WindowSummary({name: _endpoint(r) for name in names if r() < 0.8},
                            {gen: (int(r() * 50), int(r() * 5_000_000)) for gen in range(3)})
    meta = Metadata(start=start, duration=duration, period=0.01, mode="cpu", pids=(pid,),
                    host=host, service=service, version=version, gc=as_seconds(summary.gc),
                    truncated=3 if r() < 0.25 else 0)
    built = Window(meta, frames, stacks, values, summary=summary)
    built.nbytes = (estimate_bytes(frames, stacks, values, fresh_ids=False)
                    + summary_bytes(summary))
    return built


def _paths(endpoint: str) -> list[tuple[Frame, ...]]:
    """The hot call paths of ``endpoint`` (the same in every window and process)."""
    paths = _PATHS.get(endpoint)
    if paths is None:
        paths = []
        for k in range(PATHS):
            rng = random.Random(f"{endpoint}/{k}")
            paths.append(tuple(FUNCTIONS[rng.randrange(len(FUNCTIONS))]
                               for _ in range(rng.randint(6, 28))))
        _PATHS[endpoint] = paths
    return paths


_PATHS: dict[str, list[tuple[Frame, ...]]] = {}
_THREADS = [f"worker-{i}" for i in range(4)]


def _endpoint(r: Callable[[], float]) -> EndpointSummary:
    out = EndpointSummary()
    for _ in range(1 + int(r() * 30)):
        wall = 50_000 + int(r() * 3_000_000_000)
        cpu = 10_000 + int(r() * (wall - 10_000))
        out.requests += 1
        out.errors += r() < 0.05
        out.wall_ns += wall
        out.cpu_ns += cpu
        out.gc_ns += int(r() * 1000)
        out.latency[bucket_of(wall)] += 1
        out.cpu[bucket_of(cpu)] += 1
    assert len(out.latency) == BUCKETS
    return out


def expected(windows: Iterable[Window], endpoint: str | None = None) -> QueryResult:
    """What a store must answer for ``windows``, computed the plain way: the
    window profiles merged, the summaries merged, GC seconds from the summed ns."""
    chosen = sorted(windows, key=lambda w: (w.start, w.pid))
    summary = merge_summaries(w.summary for w in chosen)
    profile: Profile = merge(w.profile() for w in chosen)
    if endpoint is not None:
        profile = profile.filter(endpoint=endpoint)
        summary = WindowSummary({k: e for k, e in summary.endpoints.items() if k == endpoint},
                                summary.gc)
    profile.meta = dataclasses.replace(profile.meta, gc=as_seconds(summary.gc))
    return QueryResult(profile, summary, len(chosen))


def same(got: QueryResult, want: QueryResult) -> None:
    """Assert two query results are equal: profile (content and metadata), summary."""
    assert got.windows == want.windows
    assert got.profile.canonical() == want.profile.canonical()
    assert got.profile.meta == want.profile.meta
    assert got.summary == want.summary
