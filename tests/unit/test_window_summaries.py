"""Windows carry the summaries of the requests that finished in them: a real
FastAPI app and a real Flask (WSGI) app, driven with requests through their
test clients, with the process-wide sampler their middleware starts."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI, HTTPException

import ember.flask
from ember import api, middleware
from ember.asgi import EmberMiddleware
from ember.summary import BOUNDS_NS, WindowSummary, bucket_of, merge
from ember.window import Window

pytestmark = pytest.mark.usefixtures("clean_registry")

WINDOW = 0.05
SLEEP = 0.004
SAMPLER = {"window": WINDOW, "rate": 200, "budget": 0, "metrics": False}


class ListSink:
    def __init__(self) -> None:
        self.windows: list[Window] = []

    def window_sealed(self, window: Window) -> None:
        self.windows.append(window)

    def flush(self) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[ListSink]:
    """A process-wide sink; the process-wide sampler is stopped afterwards."""
    assert api.current() is None
    received = ListSink()
    api.add_sink(received)
    try:
        yield received
    finally:
        api.remove_sink(received)
        if api.current() is not None:
            api.stop()


Made = dict[str, list[tuple[int, int]]]
"""Endpoint -> (status, wall ns the client measured) of each request made."""


def drive(get: Callable[[str], int], plan: list[tuple[str, str]], rounds: int) -> Made:
    made: Made = collections.defaultdict(list)
    for _ in range(rounds):
        for path, endpoint in plan:
            t0 = time.perf_counter_ns()
            status = get(path)
            made[endpoint].append((status, time.perf_counter_ns() - t0))
        time.sleep(WINDOW / 3)  # spread the requests over several windows
    return made


async def drive_asgi(app: Any, plan: list[tuple[str, str]], rounds: int) -> Made:
    """:func:`drive` for an ASGI app, through httpx's in-process transport."""
    made: Made = collections.defaultdict(list)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(rounds):
            for path, endpoint in plan:
                t0 = time.perf_counter_ns()
                status = (await client.get(path)).status_code
                made[endpoint].append((status, time.perf_counter_ns() - t0))
            await asyncio.sleep(WINDOW / 3)
    return made


def stop() -> list[Window]:
    """Stop the process-wide sampler (sealing its last window); the windows it held."""
    sampler = api.current()
    assert sampler is not None
    api.stop()
    return sampler.windows()


def check(windows: list[Window], held: list[Window], made: Made,
          finished: list[middleware.Request]) -> None:
    assert [id(w) for w in windows] == [id(w) for w in held]  # each once, in order
    assert len(windows) >= 3, "the requests did not spread over windows"
    total = merge(w.summary for w in windows)
    assert set(total.endpoints) == set(made)
    for endpoint, requests in made.items():
        got = total.endpoints[endpoint]
        assert got.requests == len(requests), endpoint
        assert got.errors == sum(1 for status, _ in requests if status >= 500), endpoint
        client_wall = sum(wall for _, wall in requests)
        assert SLEEP * 1e9 * len(requests) <= got.wall_ns <= client_wall, endpoint
        ended = [r for r in finished if r.endpoint == endpoint]
        assert got.wall_ns == sum(r.duration_ns for r in ended)  # exactly what was measured
        assert got.latency == histogram([r.duration_ns for r in ended])
        assert sum(got.cpu) == sum(1 for r in ended if r.cpu_source)
        assert got.cpu_ns == sum(r.cpu_ns for r in ended if r.cpu_source)
    # each window holds what finished while it was open
    for window in windows:
        assert window.summary.requests == sum(e.requests for e in window.summary.endpoints.values())
    assert sum(w.summary.requests for w in windows) == sum(map(len, made.values()))


def histogram(values: list[int]) -> list[int]:
    counts = [0] * (len(BOUNDS_NS) + 1)
    for value in values:
        counts[bucket_of(value)] += 1
    return counts


def test_fastapi_windows_summarise_the_requests_made(
        sink: ListSink, finished: list[middleware.Request]) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        await asyncio.sleep(SLEEP)
        return {"id": item_id}

    @app.get("/sync")
    def sync() -> dict[str, bool]:
        time.sleep(SLEEP)
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        await asyncio.sleep(SLEEP)
        raise RuntimeError("boom")

    @app.get("/unavailable")
    async def unavailable() -> None:
        await asyncio.sleep(SLEEP)
        raise HTTPException(503)

    app.add_middleware(EmberMiddleware, **SAMPLER)
    plan = [("/items/1", "GET /items/{item_id}"), ("/items/22", "GET /items/{item_id}"),
            ("/sync", "GET /sync"), ("/boom", "GET /boom"),
            ("/unavailable", "GET /unavailable")]
    made = asyncio.run(drive_asgi(app, plan, rounds=12))
    held = stop()
    assert {e: {s for s, _ in r} for e, r in made.items()} == {
        "GET /items/{item_id}": {200}, "GET /sync": {200}, "GET /boom": {500},
        "GET /unavailable": {503}}
    check(sink.windows, held, made, finished)


def test_flask_windows_summarise_the_requests_made(
        sink: ListSink, finished: list[middleware.Request]) -> None:
    app = flask.Flask("summaries")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        time.sleep(SLEEP)
        return {"id": item_id}

    @app.route("/boom")
    def boom() -> Any:
        time.sleep(SLEEP)
        raise RuntimeError("boom")

    @app.route("/unavailable")
    def unavailable() -> Any:
        time.sleep(SLEEP)
        flask.abort(503)

    ember.flask.init_app(app, **SAMPLER)
    client = app.test_client()
    plan = [("/items/1", "GET /items/{item_id}"), ("/items/5", "GET /items/{item_id}"),
            ("/boom", "GET /boom"), ("/unavailable", "GET /unavailable")]
    made = drive(lambda path: client.get(path, buffered=True).status_code, plan, rounds=12)
    held = stop()
    assert {e: {s for s, _ in r} for e, r in made.items()} == {
        "GET /items/{item_id}": {200}, "GET /boom": {500}, "GET /unavailable": {503}}
    check(sink.windows, held, made, finished)
    assert all(isinstance(w.summary, WindowSummary) for w in sink.windows)
