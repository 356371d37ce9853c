"""Middleware cost per request against the bare app, WSGI and ASGI, in one process.

No server and no sockets: the script calls the applications itself.

- WSGI: a trivial app (``start_response``, then ``[b"ok"]``) called with a
  prebuilt environ and a no-op ``start_response``; the returned iterable is
  consumed and closed, as a server would. Bare against
  ``ember.wsgi.EmberMiddleware(app, start_sampler=False, metrics=False)`` (the
  pure middleware), and, for information, the same with the Prometheus
  observer of ``ember.metrics`` installed (``metrics=True``).
- ASGI: a trivial app (``http.response.start``, then one body) driven by a
  minimal harness: one asyncio task awaits the app in a loop with a prebuilt
  scope (copied per call), ``receive`` and ``send`` (no-op coroutines). Bare
  against ``ember.asgi.EmberMiddleware(app, start_sampler=False,
  metrics=False)``; for information, a Starlette app with one route, bare
  against wrapped.
- With the window summaries: the same pure middleware, with the observer a
  running sampler registers (``RequestRecorder.observe``, which adds each
  finished request into the open window's per-endpoint summaries), alone
  and with the Prometheus observer too (what ``ensure_started()`` wires by
  default). The sampler itself is not started.
- For information, a Flask app with one route (``/items/<int:item_id>``), bare
  against ``ember.flask.init_app(app, start_sampler=False, metrics=False)``:
  the WSGI middleware plus the hook that reads Flask's route, as in production;
  and the garbage collections per 1,000 requests of each (a count: requests
  that leave reference cycles make the collector run more often).
- For information, asyncio tasks created and awaited inside a request
  (``create_task`` of an empty coroutine): a plain loop against one whose task
  factory ember wrapped so that the tasks carry the request's endpoint.

Method: batches of ``--calls`` calls, variants alternating (A B, then B A,
...), each batch timed with the calling thread's CPU clock
(``time.thread_time_ns``). Every pair gives a difference wrapped - bare; the
script reports the median per-call cost of each side and the **median of the
pair differences** (with its min-max). The sampler is not started: this is the
middleware's own cost per request. The Prometheus observer is process-wide
(``ember.middleware.OBSERVERS``), so the script empties that list for every
batch except the metrics variant's.

Targets: <= 5 us per request (WSGI), <= 10 us per request (ASGI).

    python benchmarks/middleware_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ember import middleware
from ember.asgi import EmberMiddleware as AsgiMiddleware
from ember.summary import RequestRecorder
from ember.wsgi import EmberMiddleware as WsgiMiddleware

TARGET_WSGI_US = 5.0
TARGET_ASGI_US = 10.0

Batch = Callable[[int], int]
"""Run ``n`` calls; return the CPU time they took, in ns."""


# -- WSGI ---------------------------------------------------------------------------
def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def wsgi_environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/items/42", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost:8000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def no_op_start_response(status: str, headers: list[tuple[str, str]],
                         exc_info: Any = None) -> Callable[[bytes], None]:
    return no_op_write


def no_op_write(data: bytes) -> None:
    pass


def wsgi_batch(app: Callable[..., Any]) -> Batch:
    base = wsgi_environ()
    start_response = no_op_start_response

    def run(n: int) -> int:
        clock = time.thread_time_ns
        t0 = clock()
        for _ in range(n):
            environ = base.copy()  # a server builds a fresh environ per request
            result = app(environ, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return clock() - t0

    return run


# -- ASGI ---------------------------------------------------------------------------
async def asgi_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                   send: Callable[[Any], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok", "more_body": False})


def asgi_scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/items/42",
        "raw_path": b"/items/42", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"localhost:8000")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> dict[str, Any]:
    return _REQUEST


async def send(message: Any) -> None:
    pass


def asgi_batch(app: Callable[..., Awaitable[None]], loop: asyncio.AbstractEventLoop) -> Batch:
    base = asgi_scope()

    async def calls(n: int) -> int:
        clock = time.thread_time_ns
        t0 = clock()
        for _ in range(n):
            await app(base.copy(), receive, send)  # a server builds a fresh scope
        return clock() - t0

    def run(n: int) -> int:
        return loop.run_until_complete(calls(n))  # one task per batch, as one connection

    return run


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/items/{item_id}", item)])


def flask_app(with_ember: bool) -> Any:
    import flask

    app = flask.Flask("middleware_overhead")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return "ok"

    if with_ember:
        import ember.flask

        ember.flask.init_app(app, start_sampler=False, metrics=False)
    return app


def collections_per_1000(app: Any, requests: int = 20_000) -> float:
    """Generation-0 collections per 1,000 requests through ``app``."""
    run = wsgi_batch(app)
    run(100)
    gc.collect()
    before = gc.get_stats()[0]["collections"]
    run(requests)
    return (gc.get_stats()[0]["collections"] - before) * 1000 / requests


def task_batch(loop: asyncio.AbstractEventLoop, adopting: bool) -> Batch:
    """``create_task`` + ``await`` of an empty coroutine inside a registered request."""
    from ember.attribution import _adopt_children, registry

    async def empty() -> None:
        pass

    async def calls(n: int) -> int:
        loop.set_task_factory(None)
        if adopting:
            _adopt_children(loop, registry)
        registry.enter_task((("endpoint", "GET /tasks"),))
        clock = time.thread_time_ns
        t0 = clock()
        for _ in range(n):
            await asyncio.create_task(empty())
        spent = clock() - t0
        registry.exit_task()
        return spent

    def run(n: int) -> int:
        return loop.run_until_complete(calls(n))

    return run


# -- the comparison -----------------------------------------------------------------
def compare(name: str, bare: Batch, wrapped: Batch, args: argparse.Namespace,
            observers: tuple[list[Any], list[Any]] = ([], [])) -> float:
    """Alternate batches; print and return the median pair difference in us per call."""
    bare_observers, wrapped_observers = observers

    def timed(batch: Batch, obs: list[Any]) -> float:
        middleware.OBSERVERS[:] = obs
        return batch(args.calls) / args.calls / 1e3

    for batch, obs in ((bare, bare_observers), (wrapped, wrapped_observers)):
        timed(batch, obs)  # warm-up
    bare_us: list[float] = []
    wrapped_us: list[float] = []
    for i in range(args.pairs):
        order = ((bare, bare_observers, bare_us), (wrapped, wrapped_observers, wrapped_us))
        for batch, obs, out in order if i % 2 == 0 else order[::-1]:
            gc.collect()
            out.append(timed(batch, obs))
    middleware.OBSERVERS[:] = []
    diffs = [w - b for b, w in zip(bare_us, wrapped_us, strict=True)]
    median = statistics.median(diffs)
    print(f"  {name:<34} {statistics.median(bare_us):8.2f} {statistics.median(wrapped_us):8.2f} "
          f"{median:8.2f}  ({min(diffs):.2f} .. {max(diffs):.2f})")
    if args.verbose:
        print("    bare:    " + " ".join(f"{x:.2f}" for x in bare_us))
        print("    wrapped: " + " ".join(f"{x:.2f}" for x in wrapped_us))
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per batch (20000)")
    parser.add_argument("--pairs", type=int, default=15, help="pairs of batches (15)")
    parser.add_argument("--verbose", action="store_true", help="print every batch")
    args = parser.parse_args(argv)

    print(f"middleware_overhead: {args.pairs} pairs of batches of {args.calls:,} calls, "
          "alternating; thread CPU per call, us")
    print(f"  {'variant':<34} {'bare':>8} {'wrapped':>8} {'diff':>8}  (pair min .. max)")

    # Pure middleware first: no observer anywhere.
    wsgi_plain = WsgiMiddleware(wsgi_app, start_sampler=False, metrics=False)
    wsgi_cost = compare("WSGI, metrics=False", wsgi_batch(wsgi_app),
                        wsgi_batch(wsgi_plain), args)
    flask_bare, flask_ember = flask_app(False), flask_app(True)
    compare("Flask 1 route, metrics=False", wsgi_batch(flask_bare), wsgi_batch(flask_ember), args)
    print(f"  {'  gen-0 collections per 1,000 requests':<34} "
          f"{collections_per_1000(flask_bare):8.2f} {collections_per_1000(flask_ember):8.2f}")

    loop = asyncio.new_event_loop()
    asgi_plain = AsgiMiddleware(asgi_app, start_sampler=False, metrics=False)
    asgi_cost = compare("ASGI, metrics=False", asgi_batch(asgi_app, loop),
                        asgi_batch(asgi_plain, loop), args)
    star = starlette_app()
    star_wrapped = AsgiMiddleware(star, start_sampler=False, metrics=False)
    compare("Starlette 1 route, metrics=False", asgi_batch(star, loop),
            asgi_batch(star_wrapped, loop), args)

    # With a running sampler's observer: the window summaries.
    summaries = [RequestRecorder().observe]
    compare("WSGI, window summaries", wsgi_batch(wsgi_app), wsgi_batch(wsgi_plain), args,
            ([], summaries))
    compare("ASGI, window summaries", asgi_batch(asgi_app, loop),
            asgi_batch(asgi_plain, loop), args, ([], summaries))

    # With the Prometheus observer (installed by the first metrics=True request).
    observers: list[Any] = []
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print("  (prometheus-client is not installed: no metrics=True variant)")
    else:
        wsgi_metrics = WsgiMiddleware(wsgi_app, start_sampler=False, metrics=True)
        wsgi_batch(wsgi_metrics)(1)  # installs ember.metrics' observer
        observers = list(middleware.OBSERVERS)
        compare("WSGI, metrics=True", wsgi_batch(wsgi_app), wsgi_batch(wsgi_metrics),
                args, ([], observers))
        asgi_metrics = AsgiMiddleware(asgi_app, start_sampler=False, metrics=True)
        compare("ASGI, metrics=True", asgi_batch(asgi_app, loop),
                asgi_batch(asgi_metrics, loop), args, ([], observers))
        compare("WSGI, summaries + metrics", wsgi_batch(wsgi_app), wsgi_batch(wsgi_metrics),
                args, ([], summaries + observers))
    compare("asyncio task in a request (info)", task_batch(loop, False),
            task_batch(loop, True), args)
    loop.close()
    if middleware.errors:
        print(f"  warning: ember counted {middleware.errors} internal failures")

    for name, cost, target in (("WSGI", wsgi_cost, TARGET_WSGI_US),
                               ("ASGI", asgi_cost, TARGET_ASGI_US)):
        print(f"{'PASS' if cost <= target else 'FAIL'}: {name} middleware cost "
              f"{cost:.2f} us per request (target <= {target:g} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
