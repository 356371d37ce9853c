"""ember against the truth on services like real ones: which function and which
request burned the CPU.

A real server runs one of ``truth_apps.py``'s services (FastAPI under uvicorn,
Flask under gunicorn's ``gthread`` worker); ``--clients`` threads load it over
loopback for ``--seconds``. Every burn function measures its own CPU with its
thread's clock, every request the CPU of its burns. Then the script compares:

- each burn function's CPU in ember's profile (its stacks, callees included)
  with what it measured: target within +-15%;
- the share of ember's CPU on wait/select/accept/socket-write frames (leaf
  frames that only wait for I/O or hand data to the kernel): target <= 5%;
- ``ember_request_cpu_seconds`` per request of each route with the burns of
  its requests: target 0.9-1.3x (the rest is the framework's own work).

ember runs at its defaults (the middleware starts it: cpu mode, 100 Hz, 1%
budget). ``--anchor`` also runs the same service without ember's sampler
(``EMBER_DISABLE=1``) under py-spy at 100 Hz, whose samples / 100 give its
estimate of each function's CPU.

    python benchmarks/service_truth.py [--app fastapi|flask|both] [--seconds 14]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ember
from ember import pyspy

HERE = Path(__file__).resolve().parent
FUNCTIONS = {"fastapi": ("burn_orders", "burn_search", "burn_report"),
             "flask": ("burn_orders", "burn_cart", "burn_report")}
ROUTES = {
    "fastapi": [("/orders/{n}", 35), ("/search?q=abc", 30), ("/report", 20), ("/wait", 15)],
    "flask": [("/orders/{n}", 35), ("/cart", 30), ("/report", 20), ("/wait", 15)],
}
WAIT_LEAVES = frozenset((
    # waiting for I/O or for work: selectors, conditions, queues, sleeps, accept
    "select", "poll", "wait", "get", "sleep", "accept", "_accept_connection",
    "_accept_connection2", "run_forever", "_run_once",
    # handing data to or taking it from the kernel
    "write", "writelines", "sendall", "send", "sendfile", "recv", "recv_into",
    "readinto", "readline", "_read_ready", "_read_ready__data_received", "_write_ready",
))
TARGET_FUNCTION = 0.15
TARGET_WAIT = 0.05
TARGET_REQUEST = (0.9, 1.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **env, TRUTH_APP=app, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    if app == "fastapi":
        argv = [sys.executable, "-m", "uvicorn", "truth_apps:fastapi_app", "--host",
                "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
                "-b", f"127.0.0.1:{port}", "--log-level", "warning", "truth_apps:flask_app"]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the server's stderr, closed by stop_server
    proc = subprocess.Popen(argv, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{app} server exited: {log.read().decode()[-2000:]}")
        try:
            get(port, "/_truth")
            return proc
        except OSError:
            if time.monotonic() > deadline:
                stop_server(proc)
                raise RuntimeError(f"{app} server did not start") from None
            time.sleep(0.1)


def stop_server(proc: subprocess.Popen[bytes]) -> str:
    """Stop the server; return what it wrote on stderr."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = proc.log  # type: ignore[attr-defined]
    log.seek(0)
    text: str = log.read().decode(errors="replace")
    log.close()
    return text


def serving_pid(pid: int) -> int:
    """The process that serves requests: gunicorn's worker, else ``pid`` itself."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return pid
    return children[0] if children else pid


def get(port: int, path: str, connection: http.client.HTTPConnection | None = None) -> bytes:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body
    finally:
        if connection is None:
            conn.close()


def load(app: str, port: int, seconds: float, clients: int) -> int:
    """``clients`` threads, each a keep-alive connection, for ``seconds``."""
    routes, weights = zip(*ROUTES[app], strict=True)
    done = [0] * clients
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < stop_at:
                path = rng.choices(routes, weights)[0].replace("{n}", str(rng.randrange(1000)))
                get(port, path, conn)
                done[i] += 1
        except Exception as exc:  # reported below: a broken request fails the run
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    return sum(done)


def request_cpu(metrics: str) -> dict[str, tuple[float, float]]:
    """endpoint -> (sum, count) of ember_request_cpu_seconds."""
    out: dict[str, list[float]] = {}
    pattern = re.compile(r'^ember_request_cpu_seconds_(sum|count)\{endpoint="([^"]*)",'
                         r'method="[^"]*"\} (\S+)$')
    for line in metrics.splitlines():
        match = pattern.match(line)
        if match:
            entry = out.setdefault(match.group(2), [0.0, 0.0])
            entry[0 if match.group(1) == "sum" else 1] += float(match.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


def function_cpu(profile: ember.Profile, names: tuple[str, ...], value: str) -> dict[str, float]:
    """Seconds (cpu) or samples of the stacks that contain each function."""
    out = dict.fromkeys(names, 0.0)
    for stack, _labels, values in profile.samples():
        present = {f.name for f in stack} & set(names)
        amount = values.cpu_ns / 1e9 if value == "cpu" else values.samples
        for name in present:
            out[name] += amount
    return out


def wait_share(profile: ember.Profile, value: str) -> tuple[float, dict[str, float]]:
    """The share of ``value`` on wait leaves, and the heaviest such leaves."""
    total = waiting = 0.0
    leaves: dict[str, float] = {}
    for stack, _labels, values in profile.samples():
        amount = values.cpu_ns if value == "cpu" else values.samples
        total += amount
        if stack and stack[-1].name.rsplit(".", 1)[-1] in WAIT_LEAVES:
            waiting += amount
            leaves[stack[-1].name] = leaves.get(stack[-1].name, 0) + amount
    top = dict(sorted(leaves.items(), key=lambda kv: -kv[1])[:5])
    return (waiting / total if total else 0.0), {k: v / total for k, v in top.items()}


def measure(app: str, seconds: float = 14.0, clients: int = 4,
            backend: str = "ember") -> dict[str, Any]:
    """One run: the server, the load, the truth and what ember (or py-spy) saw."""
    port = free_port()
    env = {"EMBER_DISABLE": "1"} if backend == "py-spy" else {}
    proc = start_server(app, port, env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spy: dict[str, Any] = {}
            spy_thread = None
            if backend == "py-spy":
                target = serving_pid(proc.pid)

                def run_spy() -> None:
                    spy["profile"], _ = pyspy.record(pid=target, rate=100.0,
                                                     duration=seconds)
                spy_thread = threading.Thread(target=run_spy)
                spy_thread.start()
                time.sleep(1.0)  # py-spy attaches
            requests = load(app, port, seconds, clients)
            if spy_thread is not None:
                spy_thread.join()
            truth = json.loads(get(port, "/_truth"))
            metrics = get(port, "/metrics/" if app == "fastapi" else "/metrics").decode()
            path = os.path.join(tmp, "profile.pb.gz")
            dumped = json.loads(get(port, f"/_profile?path={path}"))
            profile = spy["profile"] if backend == "py-spy" else ember.load(path)
    finally:
        server_log = stop_server(proc)
    names = FUNCTIONS[app]
    value = "samples" if backend == "py-spy" else "cpu"
    seen = function_cpu(profile, names, value)
    if backend == "py-spy":
        seen = {k: v / 100.0 for k, v in seen.items()}
    true = {k: truth["functions"].get(k, 0) / 1e9 for k in names}
    share, leaves = wait_share(profile, value)
    per_request = {}
    if backend == "ember":
        cpu = request_cpu(metrics)
        for route, (count, burned) in truth["requests"].items():
            total, n = cpu.get(route, (0.0, 0.0))
            if count and burned and n:
                per_request[route] = {"ember_ms": total / n * 1e3,
                                      "burns_ms": burned / count / 1e6, "requests": n}
    return {"app": app, "backend": backend, "requests": requests, "seconds": seconds,
            "functions": {k: {"seen": seen[k], "true": true[k],
                              "ratio": seen[k] / true[k] if true[k] else 0.0} for k in names},
            "wait_share": share, "wait_leaves": leaves, "per_request": per_request,
            "stats": dumped.get("stats", {}), "log": server_log[-4000:]}


IO_SYSCALLS = frozenset((
    "__x64_sys_sendto", "__x64_sys_sendmsg", "__x64_sys_write", "__x64_sys_writev",
    "__x64_sys_recvfrom", "__x64_sys_recvmsg", "__x64_sys_read", "__x64_sys_readv",
    "__x64_sys_epoll_wait", "__x64_sys_epoll_pwait", "__x64_sys_epoll_ctl", "__x64_sys_poll",
    "__x64_sys_select", "__x64_sys_pselect6", "__x64_sys_accept", "__x64_sys_accept4",
    "__x64_sys_shutdown", "__x64_sys_close",
))


def syscall_floor(app: str, seconds: float, clients: int) -> dict[str, float] | None:
    """The share of the server's CPU really spent inside I/O system calls, from
    ``perf record -g`` of the serving process (no sampler of ember's running):
    what the wait/select/accept/write leaves could rightly hold. None without perf."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    port = free_port()
    proc = start_server(app, port, {"EMBER_DISABLE": "1"})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "perf.data")
            loader = threading.Thread(target=load, args=(app, port, seconds, clients))
            loader.start()
            time.sleep(min(1.0, seconds / 4))
            subprocess.run([perf, "record", "-q", "-F", "2000", "-g", "-p",
                            str(serving_pid(proc.pid)), "-o", data, "--", "sleep",
                            str(seconds / 2)], capture_output=True, check=False)
            loader.join()
            script = subprocess.run([perf, "script", "-i", data], capture_output=True,
                                    text=True, check=False).stdout
    finally:
        stop_server(proc)
    total = io = futex = 0
    for block in script.split("\n\n"):
        symbols = {line.split()[1].split("+")[0] for line in block.splitlines()[1:]
                   if len(line.split()) > 1}
        if not symbols:
            continue
        total += 1
        io += bool(symbols & IO_SYSCALLS)
        futex += "__x64_sys_futex" in symbols
    return {"io": io / total, "futex": futex / total, "samples": total} if total else None


def report(result: dict[str, Any]) -> list[tuple[str, bool]]:
    app, backend = result["app"], result["backend"]
    stats = result["stats"]
    print(f"\n{app}, {backend}: {result['requests']} requests in {result['seconds']:.0f} s"
          + (f"; sampler {stats.get('rate', 0):.0f} wakes/s, {stats.get('cycles', 0)} cycles, "
             f"{stats.get('samples', 0)} samples, overhead {stats.get('overhead_ratio', 0):.2%}"
             f" of a core, truthful={stats.get('truthful')}" if stats else ""))
    verdicts = []
    for name, f in result["functions"].items():
        ok = abs(f["ratio"] - 1) <= TARGET_FUNCTION
        print(f"  {name:<12} seen {f['seen']:7.3f} s  true {f['true']:7.3f} s  "
              f"ratio {f['ratio']:.3f}")
        verdicts.append((f"{app}/{backend} {name} within ±15%", ok))
    print(f"  wait/select/accept/write leaves: {result['wait_share']:.1%} of "
          f"{'CPU' if backend == 'ember' else 'samples'}"
          + "".join(f"; {k} {v:.1%}" for k, v in result["wait_leaves"].items()))
    verdicts.append((f"{app}/{backend} wait leaves <= 5%", result["wait_share"] <= TARGET_WAIT))
    for route, r in result["per_request"].items():
        ratio = r["ember_ms"] / r["burns_ms"]
        print(f"  {route:<28} request CPU {r['ember_ms']:6.2f} ms, burns {r['burns_ms']:6.2f} ms,"
              f" ratio {ratio:.3f} ({r['requests']:.0f} requests)")
        verdicts.append((f"{app}/{backend} {route} request CPU in 0.9-1.3x",
                         TARGET_REQUEST[0] <= ratio <= TARGET_REQUEST[1]))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", choices=("fastapi", "flask", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=14.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--anchor", action="store_true", help="also run py-spy on the service")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--syscall-floor", action="store_true",
                        help="also measure with perf the server CPU really spent in I/O "
                             "system calls (the floor under the wait-leaf share)")
    args = parser.parse_args()
    apps = ("fastapi", "flask") if args.app == "both" else (args.app,)
    print(f"service_truth.py: {args.clients} clients, {args.seconds:.0f} s per run, "
          f"ember implementation {ember.implementation()}")
    verdicts: list[tuple[str, bool]] = []
    results = []
    for app in apps:
        for backend in ("ember", "py-spy") if args.anchor else ("ember",):
            result = measure(app, args.seconds, args.clients, backend)
            results.append(result)
            judged = report(result)
            if backend == "ember":
                verdicts += judged
        if args.syscall_floor:
            floor = syscall_floor(app, args.seconds, args.clients)
            if floor is None:
                print("  syscall floor: perf is not installed (apt-get install linux-perf)")
            else:
                print(f"  syscall floor ({app}, perf, {floor['samples']:.0f} samples, no ember): "
                      f"{floor['io']:.1%} of the server's CPU inside I/O system calls, "
                      f"{floor['futex']:.1%} in futex (GIL and lock hand-overs)")
    if args.json:
        print(json.dumps(results, indent=1))
    print()
    for what, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}: {what}")


if __name__ == "__main__":
    main()
