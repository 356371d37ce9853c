"""A FastAPI app for tests/test_asgi_servers.py, served by a real uvicorn.

Each route burns CPU in its own function, so the test can check that the
samples of that function carry the route's endpoint label. ``/_ember/dump``
(test only) writes the running sampler's profile to ``$EMBER_TEST_DUMP``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from fastapi import Depends, FastAPI

import ember
from ember.asgi import EmberMiddleware

CHUNK = (0.006, 0.012)  # seconds; > the 5 ms GIL switch interval (tests/test_attribution.py)

app = FastAPI()
app.add_middleware(EmberMiddleware, rate=500, budget=0, window=0)
_rng = random.Random(11)


def burn_alpha(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_beta(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_sync(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def burn_dependency(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


def sync_dependency() -> int:
    """A sync dependency: FastAPI runs it in the thread pool too."""
    burn_dependency(0.03)  # as much as the route itself: enough samples of both
    return 1


@app.get("/alpha")
async def alpha() -> dict[str, str]:
    for _ in range(5):
        burn_alpha(_rng.uniform(*CHUNK))
        await asyncio.sleep(0)  # the other requests run in between
    return {"route": "alpha"}


@app.get("/beta")
async def beta() -> dict[str, str]:
    for _ in range(5):
        burn_beta(_rng.uniform(*CHUNK))
        await asyncio.sleep(0)
    return {"route": "beta"}


@app.get("/sync/{item_id}")
def sync_item(item_id: int, dep: int = Depends(sync_dependency)) -> dict[str, int]:
    burn_sync(0.03)
    return {"item_id": item_id, "dep": dep}


def burn_child(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(200))


async def child_work(chunks: int) -> None:
    for _ in range(chunks):
        burn_child(_rng.uniform(*CHUNK))
        await asyncio.sleep(0)


@app.get("/fanout")
async def fanout() -> dict[str, str]:
    """The work runs in tasks the request creates (gather), one of them nested."""

    async def nested() -> None:
        await asyncio.create_task(child_work(1))

    await asyncio.gather(child_work(2), child_work(2), nested())
    return {"route": "fanout"}


@app.post("/_ember/dump")
async def dump() -> dict[str, int]:
    sampler = ember.current()
    assert sampler is not None, "the middleware did not start the sampler"
    profile = sampler.profile()
    ember.dump(profile, os.environ["EMBER_TEST_DUMP"])
    return {"samples": sum(v.samples for _, _, v in profile.samples())}
