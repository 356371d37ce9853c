"""Endpoint attribution: sync threads, interleaving asyncio tasks, caps, background."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from ember import Sampler, middleware
from ember.attribution import BACKGROUND, OTHER, Attribution, normalise_path, registry
from support import share_in

pytestmark = pytest.mark.usefixtures("clean_registry")

def burn_alpha(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_beta(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


@pytest.mark.parametrize(("path", "template"), [
    ("/items/123", "/items/{id}"),
    ("/users/550e8400-e29b-41d4-a716-446655440000/orders", "/users/{id}/orders"),
    ("/blobs/deadbeefcafe1234", "/blobs/{id}"),
    ("/v1/health", "/v1/health"),
    ("/search?q=42", "/search"),
    ("/", "/"),
    ("/t/aB3dE5fG7hJ9kL1mN", "/t/{id}"),
])
def test_normalise_path(path: str, template: str) -> None:
    assert normalise_path(path) == template


def test_endpoint_labels_are_capped() -> None:
    reg = Attribution(max_endpoints=200)
    labels = {reg.endpoint("GET", normalise_path(f"/p/{i}/x{i}y")) for i in range(10_000)}
    assert len(labels) <= 200 + 1
    assert OTHER in labels
    assert reg.endpoint("GET", normalise_path("/p/1/x1y")) == "GET /p/{id}/x1y"  # known stay


def test_sync_threads_are_attributed_to_their_request(implementation: str) -> None:
    registry.activate()
    sampler = Sampler(implementation=implementation, rate=500, budget=0, window=0)
    go = threading.Event()

    def serve(endpoint: str, work: object) -> None:
        go.wait()
        registry.enter_thread((("endpoint", endpoint),))
        try:
            work(0.6)  # type: ignore[operator]
        finally:
            registry.exit_thread()

    threads = [threading.Thread(target=serve, args=("GET /alpha", burn_alpha)),
               threading.Thread(target=serve, args=("POST /beta", burn_beta))]
    for t in threads:
        t.start()
    sampler.start()
    try:
        go.set()
        for t in threads:
            t.join()
    finally:
        profile = sampler.stop()
    assert share_in(profile, "burn_alpha", "GET /alpha")[0] > 0.95
    assert share_in(profile, "burn_beta", "POST /beta")[0] > 0.95
    assert BACKGROUND in profile.label_values("endpoint") or \
        profile.label_values("endpoint") == {"GET /alpha", "POST /beta"}


def test_interleaving_asyncio_tasks_on_one_loop(implementation: str) -> None:
    rng = random.Random(7)

    async def handler(endpoint: str, work: object) -> None:
        registry.enter_task((("endpoint", endpoint),))
        try:
            # Chunks of varied length, longer than the GIL switch interval (5 ms):
            # shorter ones let the sampler in only when the loop releases the GIL
            # between tasks (its wait restarts at every release), a bias of
            # in-process sampling on asyncio that issue 4 has to address.
            for _ in range(40):
                work(rng.uniform(0.006, 0.012))  # type: ignore[operator]
                await asyncio.sleep(0)  # the other request runs in between
        finally:
            registry.exit_task()

    async def main() -> None:
        await asyncio.gather(handler("GET /alpha", burn_alpha), handler("POST /beta", burn_beta))

    registry.activate()
    sampler = Sampler(implementation=implementation, rate=500, budget=0, window=0)
    sampler.start()
    try:
        asyncio.run(main())
    finally:
        profile = sampler.stop()
    assert share_in(profile, "burn_alpha", "GET /alpha")[0] > 0.95
    assert share_in(profile, "burn_beta", "POST /beta")[0] > 0.95


def test_outside_requests_is_background_once_active(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=500, budget=0, window=0, mode="wall")
    sampler.sample_once()
    assert "endpoint" not in {k for _, labels in sampler.profile().values for k, _ in labels}
    registry.activate()
    idle = threading.Event()
    t = threading.Thread(target=idle.wait)
    t.start()
    try:
        sampler.sample_once()
        sampler.sample_once()
    finally:
        idle.set()
        t.join()
    assert BACKGROUND in sampler.profile().label_values("endpoint")


def test_asyncio_request_cpu_is_what_the_sampler_credited_to_its_task(
        implementation: str, finished: list[middleware.Request]) -> None:
    truth: dict[str, int] = {}
    rng = random.Random(3)

    async def handler(endpoint: str, work: object, chunks: int) -> None:
        request = middleware.begin("GET", endpoint, asyncio_task=True)
        spent = 0
        # Same chunk lengths for both requests (the sampler gets the GIL more
        # often in longer chunks, a bias of in-process sampling); more chunks
        # for beta, so its true CPU is about twice alpha's.
        for _ in range(chunks):
            before = time.thread_time_ns()
            work(rng.uniform(0.006, 0.012))  # type: ignore[operator]
            spent += time.thread_time_ns() - before
            await asyncio.sleep(0)
        truth[endpoint] = spent
        middleware.end(request, 200)

    async def main() -> None:
        await asyncio.gather(handler("GET /alpha", burn_alpha, 40),
                             handler("GET /beta", burn_beta, 80))

    registry.activate()
    sampler = Sampler(implementation=implementation, rate=500, budget=0, window=0)
    sampler.start()
    try:
        asyncio.run(main())
    finally:
        sampler.stop()
    by_endpoint = {r.endpoint: r for r in finished}
    assert set(by_endpoint) == {"GET /alpha", "GET /beta"}
    for endpoint, request in by_endpoint.items():
        assert request.cpu_source == "sampler"
        # Sampled: each cycle's CPU goes to the task running at that moment.
        assert request.cpu_s == pytest.approx(truth[endpoint] / 1e9, rel=0.3), endpoint
    assert by_endpoint["GET /beta"].cpu_s > 1.4 * by_endpoint["GET /alpha"].cpu_s
