"""CPU per request of a CPU-bound FastAPI route, full ember against bare, in one server.

One uvicorn process serves two copies of the same FastAPI app: ``/bare/work``
(no ember) and ``/full/work`` (``EmberMiddleware`` with its Prometheus metrics),
a route doing a fixed amount of pure-Python work (~3 ms). ``/_ember/on`` starts
the process-wide sampler at its defaults (cpu mode, 100 Hz, 1% budget) and
``/_ember/off`` stops it. The client (this script) alternates batches of
``--requests`` sequential keep-alive requests:

- A: sampler on, ``/full/work`` (full ember, as in production);
- B: sampler off, ``/bare/work`` (no ember at all);

in the order A B, B A, ... and reads the server's CPU (``process_time_ns``,
every thread: the sampler's own CPU counts) before and after each batch
(``/_cpu``). Each pair gives a ratio of CPU per request, A / B; beside it, in
the same process, an A/A control (B against B) measures the method itself.
Each of ``--processes`` fresh servers gives the median of its pair ratios;
target: every median <= 1.02.

    python benchmarks/request_overhead.py [--processes 3] [--pairs 30] [--requests 80]
        [--variant full|middleware|sampler|no-handoff]

The same file is the app: ``uvicorn request_overhead:app``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = 1.02
WORK_ROUNDS = 24_000


# -- the app (in the server) ---------------------------------------------------------
def work(rounds: int) -> int:
    """A fixed amount of pure-Python work (the same every request)."""
    x = 0
    for i in range(rounds):
        x = (x * 31 + i * i) % 1_000_003
    return x


def make_app(with_ember: bool) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    if with_ember:
        from ember.asgi import EmberMiddleware

        app.add_middleware(EmberMiddleware, start_sampler=False)

    @app.get("/work")
    async def route() -> dict[str, int]:
        return {"x": work(WORK_ROUNDS)}

    return app


def make_server() -> Any:
    import ember

    bare, full = make_app(False), make_app(True)

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        path = scope["path"]
        if path.startswith("/bare/") or path.startswith("/full/"):
            prefix = path[:5]
            inner = dict(scope, path=path[5:], root_path=scope.get("root_path", "") + prefix)
            await (bare if prefix == "/bare" else full)(inner, receive, send)
            return
        body: dict[str, Any] = {}
        if path == "/_ember/on":
            query = scope.get("query_string", b"").decode()
            ember.start(**({"gil_handoff": False} if "handoff=0" in query else {}))
        elif path == "/_ember/off":
            if ember.current() is not None:
                body = {k: v for k, v in ember.current().stats().items()  # type: ignore[union-attr]
                        if isinstance(v, int | float | bool)}
                ember.stop()
        elif path == "/_cpu":
            body = {"cpu_ns": time.process_time_ns()}
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return dispatch


app = make_server() if os.environ.get("EMBER_REQUEST_OVERHEAD_APP") else None


# -- the client (this script) --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> dict[str, Any]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return json.loads(data) if data else {}

    def batch(self, path: str, requests: int) -> float:
        """CPU (ns) per request of ``requests`` sequential requests to ``path``."""
        before = self.get("/_cpu")["cpu_ns"]
        for _ in range(requests):
            self.get(path)
        after = self.get("/_cpu")["cpu_ns"]
        return (after - before) / requests


VARIANTS = {
    # A's route, whether the sampler runs during A, its query
    "full": ("/full/work", True, ""),               # what the target is about
    "middleware": ("/full/work", False, ""),         # middleware + metrics, no sampler
    "sampler": ("/bare/work", True, ""),             # the sampler alone
    "no-handoff": ("/full/work", True, "?handoff=0"),  # full, GIL taken as any thread
}


def one_process(pairs: int, requests: int, variant: str = "full") -> dict[str, Any]:
    port = free_port()
    env = dict(os.environ, EMBER_REQUEST_OVERHEAD_APP="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "request_overhead:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, cwd=HERE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = Client(port)
                client.get("/_cpu")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for path in ("/bare/work", "/full/work"):  # warm both apps up
            client.batch(path, requests)
        ratios, control, full_cpu, bare_cpu = [], [], [], []
        stats: list[dict[str, Any]] = []
        for i in range(pairs):
            measured: dict[str, float] = {}
            for side in ("AB" if i % 2 == 0 else "BA"):
                if side == "A":
                    route, sampler_on, query = VARIANTS[variant]
                    if sampler_on:
                        client.get("/_ember/on" + query)
                        time.sleep(0.05)
                    measured["A"] = client.batch(route, requests)
                    if sampler_on:
                        stats.append(client.get("/_ember/off"))
                else:
                    measured["B"] = client.batch("/bare/work", requests)
            ratios.append(measured["A"] / measured["B"])
            full_cpu.append(measured["A"])
            bare_cpu.append(measured["B"])
            first, second = (client.batch("/bare/work", requests) for _ in range(2))
            control.append(first / second if i % 2 == 0 else second / first)
        return {"ratios": ratios, "control": control, "full_us": statistics.median(full_cpu) / 1e3,
                "bare_us": statistics.median(bare_cpu) / 1e3, "stats": stats}
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=3, help="fresh servers (3)")
    parser.add_argument("--pairs", type=int, default=30, help="A/B pairs per server (30)")
    parser.add_argument("--requests", type=int, default=80, help="requests per batch (80)")
    parser.add_argument("--variant", choices=VARIANTS, default="full",
                        help="what A runs (default full; the others take ember apart)")
    args = parser.parse_args()
    print(f"request_overhead.py: variant {args.variant}, {args.processes} servers, "
          f"{args.pairs} pairs of {args.requests} requests each, route {WORK_ROUNDS} rounds "
          "of pure Python")
    medians = []
    for n in range(args.processes):
        r = one_process(args.pairs, args.requests, args.variant)
        median = statistics.median(r["ratios"])
        medians.append(median)
        q = statistics.quantiles(r["ratios"], n=4)
        rates = [s.get("rate", 0) for s in r["stats"]] or [0]
        share = [s.get("overhead_ratio", 0) for s in r["stats"]] or [0]
        print(f"server {n + 1}: bare {r['bare_us']:.1f} us, full {r['full_us']:.1f} us per "
              f"request; full/bare median {median:.4f} (quartiles {q[0]:.4f}-{q[2]:.4f}); "
              f"A/A control median {statistics.median(r['control']):.4f}; sampler "
              f"{statistics.median(rates):.0f} wakes/s, {statistics.median(share):.2%} of a core")
    worst = max(medians)
    print(f"\n{'PASS' if worst <= TARGET else 'FAIL'}: worst server median {worst:.4f} "
          f"(target <= {TARGET})")


if __name__ == "__main__":
    main()
