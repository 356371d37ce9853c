"""CPU per request of a CPU-bound endpoint, profiled against unprofiled, side by side.

Two gunicorn servers (one sync worker each) run at the same time on two ports,
serving the same Flask app: a CPU-bound route ``/work`` (a fixed amount of
pure-Python work, ~2 ms). One is plain; the other has
``ember.flask.init_app(app, rate=100, mode="cpu", metrics=True)`` -- the
sampler at 100 Hz in the worker, the request middleware and the Prometheus
metrics (observer and feeder thread), as in production. This script is the
client: it loads the two servers alternately (A B, then B A, ...) in batches
of ``--requests`` sequential requests, for ``--seconds`` in all.

Before and after each batch it reads the loaded worker's CPU from ``/proc``:
the sum of its tasks' ``/proc/PID/task/TID/schedstat`` (first field, ns), so
the sampler and feeder threads count; and ``utime + stime`` of
``/proc/PID/stat`` (10 ms ticks; the whole-run totals only). Each pair of
batches gives a ratio of CPU per request, profiled / unprofiled; target: the
**median pair ratio <= 1.01**. The profiled worker's sampler also runs while
the other server is loaded; that idle cost is not per request, but the
whole-run figure (all the worker's CPU from the first batch to the last /
requests) is printed too. The sampler's own view comes from a test-only route,
``/ember-stats`` (``ember.current().stats()``), read at the start and end.

    python benchmarks/server_overhead.py

``--variant plain`` runs two plain servers: an A/A control of the method.
``no-metrics`` and ``no-sampler`` take one part of ember away, to see where
the cost goes. ``ticker`` has no ember at all but a thread that wakes on the
sampler's schedule (uniform 5-15 ms) and takes the GIL, doing nothing: the
floor under any in-process sampler at 100 Hz (its thread's own CPU, and the
GIL hand-offs it forces on the request thread). The same file is the app: ``create_app()`` (gunicorn
``server_overhead:create_app()``); ``EMBER_BENCH_VARIANT`` picks the variant.
"""

from __future__ import annotations

import argparse
import contextlib
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

from ticker import Ticker

TARGET_RATIO = 1.01
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {"rate": 100, "mode": "cpu", "metrics": True},  # what the target is about
    "no-metrics": {"rate": 100, "mode": "cpu", "metrics": False},
    "no-sampler": {"start_sampler": False, "metrics": True},  # middleware + metrics only
}
HERE = Path(__file__).resolve().parent


# -- the app (in the gunicorn workers) ----------------------------------------------
def leaf(n: int) -> int:
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def render(rounds: int, n: int) -> int:
    return sum(leaf(n) for _ in range(rounds))


def create_app() -> Any:
    import flask

    app = flask.Flask("server_overhead")
    rounds, n = int(os.environ.get("EMBER_BENCH_ROUNDS", "20")), 2_000

    @app.route("/work")
    def work() -> str:
        return str(render(rounds, n))

    @app.route("/pid")
    def pid() -> dict[str, Any]:
        return {"pid": os.getpid()}

    variant = os.environ.get("EMBER_BENCH_VARIANT", "plain")
    ticker = Ticker() if variant == "ticker" else None

    @app.route("/ember-stats")
    def ember_stats() -> dict[str, Any]:  # test-only: the sampler's view of itself
        if ticker is not None:
            return {"stats": ticker.stats()}
        import ember

        sampler = ember.current()
        return {"stats": sampler.stats() if sampler is not None else None}

    if ticker is not None:
        ticker.start()
    elif variant != "plain":
        import ember.flask

        ember.flask.init_app(app, **VARIANTS[variant])
    return app


# -- the client (this process) ------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} on :{port}: {response.status}")
        return body
    finally:
        conn.close()


def get_json(port: int, path: str) -> Any:
    return json.loads(get(port, path))


def tasks_ns(pid: int) -> dict[int, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return out


def stat_ns(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, variant: str, rounds: int) -> None:
        self.name = name
        self.port = free_port()
        env = dict(os.environ, EMBER_BENCH_VARIANT=variant, EMBER_BENCH_ROUNDS=str(rounds))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "sync",
             "-b", f"127.0.0.1:{self.port}", "--pythonpath", str(HERE),
             "--log-level", "warning", "server_overhead:create_app()"], env=env)
        self.pid = 0
        self.sampler_tid = 0

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.pid = get_json(self.port, "/pid")["pid"]
                return
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"{self.name} server did not start") from None
                time.sleep(0.1)

    def stats(self) -> dict[str, Any] | None:
        stats: dict[str, Any] | None = get_json(self.port, "/ember-stats")["stats"]
        return stats

    def batch(self, requests: int) -> dict[str, int]:
        before, stat0 = tasks_ns(self.pid), stat_ns(self.pid)
        for _ in range(requests):
            get(self.port, "/work")
        after, stat1 = tasks_ns(self.pid), stat_ns(self.pid)
        delta = {tid: ns - before.get(tid, 0) for tid, ns in after.items()}
        return {
            "total": sum(delta.values()),
            "main": delta.get(self.pid, 0),
            "sampler": delta.get(self.sampler_tid, 0),
            "stat": stat1 - stat0,
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="load time, both servers together (30)")
    parser.add_argument("--requests", type=int, default=50, help="requests per batch (50)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="work per request: rounds of a 2,000-step loop (20: ~2 ms)")
    parser.add_argument("--variant", choices=("plain", "ticker", *VARIANTS), default="full",
                        help="what the second server runs (full: the target; plain: an "
                        "A/A control of the method; ticker: the floor of any in-process "
                        "100 Hz sampler; no-metrics, no-sampler: where costs go)")
    parser.add_argument("--verbose", action="store_true", help="print every pair")
    args = parser.parse_args(argv)

    plain = Server("plain", "plain", args.rounds)
    profiled = Server("profiled", args.variant, args.rounds)
    try:
        for server in (plain, profiled):
            server.wait_ready()
        for server in (plain, profiled):  # warm-up; starts the sampler in the worker
            server.batch(args.requests)
        stats0 = profiled.stats()
        if stats0 is not None:
            profiled.sampler_tid = int(stats0["native_id"])
        run0 = {s.name: (sum(tasks_ns(s.pid).values()), stat_ns(s.pid)) for s in (plain, profiled)}

        pairs: list[tuple[dict[str, int], dict[str, int]]] = []
        start = time.monotonic()
        while time.monotonic() - start < args.seconds or len(pairs) < 2:
            if len(pairs) % 2 == 0:
                a = plain.batch(args.requests)
                b = profiled.batch(args.requests)
            else:
                b = profiled.batch(args.requests)
                a = plain.batch(args.requests)
            pairs.append((a, b))
        elapsed = time.monotonic() - start
        run1 = {s.name: (sum(tasks_ns(s.pid).values()), stat_ns(s.pid)) for s in (plain, profiled)}
        stats1 = profiled.stats()
    finally:
        for server in (plain, profiled):
            server.stop()

    n = args.requests
    ratios = [b["total"] / a["total"] for a, b in pairs]
    main_ratios = [b["main"] / a["main"] for a, b in pairs]
    plain_us = [a["total"] / n / 1e3 for a, _ in pairs]
    prof_us = [b["total"] / n / 1e3 for _, b in pairs]
    sampler_share = [b["sampler"] / b["total"] for _, b in pairs]
    total_requests = len(pairs) * n
    print(f"server_overhead ({args.variant} vs plain): gunicorn, 1 sync worker per server, "
          f"Flask /work "
          f"({args.rounds} x 2,000-step loop); {len(pairs)} pairs of batches of {n} "
          f"sequential requests, alternating, {elapsed:.1f} s; {os.cpu_count()} CPUs")
    print("  worker CPU per request = sum of the worker's tasks' schedstat over the batch")
    if args.verbose:
        print(f"  {'pair':>4} {'plain us':>9} {'ember us':>9} {'ratio':>7} {'sampler':>8}")
        for i, (a, b) in enumerate(pairs):
            print(f"  {i:4d} {a['total'] / n / 1e3:9.1f} {b['total'] / n / 1e3:9.1f} "
                  f"{b['total'] / a['total']:7.4f} {100 * b['sampler'] / b['total']:7.3f}%")
    q = statistics.quantiles(ratios, n=4)
    print(f"  CPU per request, median of batches: plain {statistics.median(plain_us):.1f} us, "
          f"profiled {statistics.median(prof_us):.1f} us")
    print(f"  pair ratio profiled/plain: median {statistics.median(ratios):.4f}, "
          f"quartiles {q[0]:.4f} .. {q[2]:.4f}, min {min(ratios):.4f}, max {max(ratios):.4f}")
    print(f"  main thread only (request handling, no sampler/feeder): median ratio "
          f"{statistics.median(main_ratios):.4f}")
    print(f"  sampler thread's share of the profiled worker's CPU in the batches: median "
          f"{100 * statistics.median(sampler_share):.3f}%")
    for name, idx in (("schedstat", 0), ("utime+stime", 1)):
        p = (run1["plain"][idx] - run0["plain"][idx]) / total_requests / 1e3
        e = (run1["profiled"][idx] - run0["profiled"][idx]) / total_requests / 1e3
        print(f"  whole run incl. idle time between batches ({name}): plain {p:.1f} us, "
              f"profiled {e:.1f} us per request, ratio {e / p:.4f}")
    if stats0 is not None and stats1 is not None:
        cycles = stats1["cycles"] - stats0["cycles"]
        cpu = stats1["sampler_cpu"] - stats0["sampler_cpu"]
        print(f"  sampler by stats(): {cycles / elapsed:.1f} cycles/s, "
              f"{cpu * 1e6 / max(cycles, 1):.1f} us per cycle, {cpu * 1e3:.1f} ms over the "
              f"run; process_cpu_share (since start) {100 * stats1['process_cpu_share']:.3f}%, "
              f"samples {stats1['samples'] - stats0['samples']}")
    median = statistics.median(ratios)
    print(f"{'PASS' if median <= TARGET_RATIO else 'FAIL'}: profiled worker CPU per request "
          f"{100 * (median - 1):+.2f}% vs unprofiled (median pair ratio {median:.4f}, "
          f"target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
