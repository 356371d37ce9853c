"""A plain WSGI app for the Prometheus acceptance test (run by gunicorn, 2 workers).

It starts ember with ``ember.autostart.ensure_started()`` (as the middleware
do), registers its requests itself through ``ember.middleware.begin/end`` and
serves ``/metrics`` from prometheus-client's multiprocess collector.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ember import autostart, metrics, middleware

autostart.ensure_started()
METRICS = metrics.install()  # what ensure_started installed

BURN = "GET /burn"
LIGHT = "GET /light"


def burn_hot_loop(seconds: float) -> int:
    """The known hot function: spins on the CPU of its thread."""
    n = 0
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        n += 1
    return n


def light_work() -> int:
    return sum(range(1000))


def own_hot_seconds() -> dict[str, float]:
    """This worker's own value of every function series of /burn."""
    out = {}
    for sample in METRICS.function_self.collect()[0].samples:
        if sample.name.endswith("_total") and sample.labels["endpoint"] == BURN:
            out[sample.labels["function"]] = sample.value
    return out


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(registry)]
    if path == "/own":
        body = {"pid": os.getpid(), "own": own_hot_seconds()}
    elif path == "/burn":
        request = middleware.begin("GET", BURN)
        burn_hot_loop(0.05)
        middleware.end(request, 200)
        body = {"pid": os.getpid()}
    else:
        request = middleware.begin("GET", LIGHT)
        light_work()
        middleware.end(request, 200)
        body = {"pid": os.getpid()}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
