"""Two small services that measure their own truth, for ``service_truth.py``.

Each burn function burns CPU in a loop and adds the CPU it used, measured with
its thread's own clock (``time.thread_time_ns``), to ``TRUTH``; each request
adds the CPU of its burns to ``REQUESTS`` under its route template. The
routes look like a real service's: handlers that burn in short bursts between
awaits (or blocking I/O), a sync route that FastAPI runs in its thread pool,
and a route that only waits.

- ``fastapi_app``: FastAPI with ``ember.asgi.EmberMiddleware`` at its defaults,
  served by uvicorn;
- ``flask_app``: Flask with ``ember.flask.init_app``, served by gunicorn's
  ``gthread`` worker.

Test-only routes: ``/_truth`` (the truth as JSON), ``/_profile?path=P`` (dumps
the sampler's profile to P), ``/metrics`` (prometheus-client). With
``EMBER_DISABLE=1`` the middleware is in place but no sampler runs (the
py-spy anchor).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from typing import Any

import ember

MS = 1_000_000
TRUTH: dict[str, int] = {}
"""burn function -> CPU (ns) it measured itself."""
REQUESTS: dict[str, list[int]] = {}
"""route template -> [requests, CPU (ns) of their burns]."""
_lock = threading.Lock()
_rng = random.Random(int(os.environ.get("TRUTH_SEED", "7")))


def _spin(ns: int) -> int:
    """Burn ``ns`` of this thread's CPU; returns what it measured."""
    start = time.thread_time_ns()
    end = start + ns
    x = 0
    while time.thread_time_ns() < end:
        for i in range(100):
            x += i * i
    return time.thread_time_ns() - start


def _count(name: str, used: int) -> int:
    with _lock:
        TRUTH[name] = TRUTH.get(name, 0) + used
    return used


def burn_orders(ns: int) -> int:
    return _count("burn_orders", _spin(ns))


def burn_search(ns: int) -> int:
    return _count("burn_search", _spin(ns))


def burn_report(ns: int) -> int:
    return _count("burn_report", _spin(ns))


def burn_cart(ns: int) -> int:
    return _count("burn_cart", _spin(ns))


def _request(route: str, used: int) -> None:
    with _lock:
        entry = REQUESTS.setdefault(route, [0, 0])
        entry[0] += 1
        entry[1] += used


def _burst(low_ms: float, high_ms: float) -> int:
    return int(_rng.uniform(low_ms, high_ms) * MS)


def truth() -> dict[str, Any]:
    with _lock:
        return {"functions": dict(TRUTH), "requests": {k: list(v) for k, v in REQUESTS.items()}}


def dump_profile(path: str) -> dict[str, Any]:
    sampler = ember.current()
    if sampler is None:
        return {"running": False}
    ember.dump(sampler.profile(), path)
    return {"running": True, "stats": {k: v for k, v in sampler.stats().items()
                                       if isinstance(v, int | float | bool | str)}}


# -- FastAPI under uvicorn ---------------------------------------------------------
def make_fastapi() -> Any:
    from fastapi import FastAPI
    from prometheus_client import make_asgi_app

    from ember.asgi import EmberMiddleware

    app = FastAPI()
    app.add_middleware(EmberMiddleware)
    app.mount("/metrics", make_asgi_app())

    @app.get("/orders/{order_id}")
    async def orders(order_id: int) -> dict[str, int]:
        used = 0
        for _ in range(3):  # bursts of 1-3 ms between awaits
            used += burn_orders(_burst(1, 3))
            await asyncio.sleep(0.001)
        _request("GET /orders/{order_id}", used)
        return {"order": order_id}

    @app.get("/search")
    async def search(q: str = "") -> dict[str, int]:
        used = 0
        for _ in range(4):
            used += burn_search(_burst(0.5, 2))
            await asyncio.sleep(0)
        _request("GET /search", used)
        return {"hits": len(q)}

    @app.get("/report")
    def report() -> dict[str, int]:  # sync: FastAPI runs it in the thread pool
        used = 0
        for _ in range(2):
            used += burn_report(_burst(3, 4))
            time.sleep(0.002)
        _request("GET /report", used)
        return {"rows": 2}

    @app.get("/wait")
    async def wait() -> dict[str, bool]:
        await asyncio.sleep(0.005)  # an I/O wait: no CPU of its own
        _request("GET /wait", 0)
        return {"ok": True}

    @app.get("/_truth")
    def get_truth() -> dict[str, Any]:
        return truth()

    @app.get("/_profile")
    def get_profile(path: str) -> dict[str, Any]:
        return dump_profile(path)

    return app


# -- Flask under gunicorn gthread ---------------------------------------------------
def make_flask() -> Any:
    from flask import Flask, request
    from prometheus_client import generate_latest

    import ember.flask

    app = Flask(__name__)
    ember.flask.init_app(app)

    @app.get("/orders/<int:order_id>")
    def orders(order_id: int) -> dict[str, int]:
        used = 0
        for _ in range(3):  # bursts of 1-3 ms between blocking I/O
            used += burn_orders(_burst(1, 3))
            time.sleep(0.001)
        _request("GET /orders/{order_id}", used)
        return {"order": order_id}

    @app.get("/cart")
    def cart() -> dict[str, int]:
        used = 0
        for _ in range(4):
            used += burn_cart(_burst(0.5, 2))
            time.sleep(0.0005)
        _request("GET /cart", used)
        return {"items": 4}

    @app.get("/report")
    def report() -> dict[str, int]:
        used = 0
        for _ in range(2):
            used += burn_report(_burst(3, 4))
            time.sleep(0.002)
        _request("GET /report", used)
        return {"rows": 2}

    @app.get("/wait")
    def wait() -> dict[str, bool]:
        time.sleep(0.005)
        _request("GET /wait", 0)
        return {"ok": True}

    @app.get("/_truth")
    def get_truth() -> dict[str, Any]:
        return truth()

    @app.get("/_profile")
    def get_profile() -> dict[str, Any]:
        return dump_profile(request.args["path"])

    @app.get("/metrics")
    def metrics() -> tuple[bytes, int, dict[str, str]]:
        return generate_latest(), 200, {"Content-Type": "text/plain; version=0.0.4"}

    return app


fastapi_app = make_fastapi() if os.environ.get("TRUTH_APP") == "fastapi" else None
flask_app = make_flask() if os.environ.get("TRUTH_APP") == "flask" else None
