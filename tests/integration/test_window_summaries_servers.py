"""Real servers: gunicorn (2 workers) serving Flask and uvicorn serving FastAPI,
driven with HTTP requests; every worker's sealed windows reach a sink that
writes them to a file (the last one when the server stops), and the merged
summaries of all windows of all workers are the requests made."""

from __future__ import annotations

import collections
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ember.summary import WindowSummary, merge
from support import stop_process

APPS = Path(__file__).parent / "summary_apps"
SLEEP = 0.003

pytestmark = pytest.mark.slow

Made = dict[str, list[tuple[int, int]]]
"""Endpoint -> (status, wall ns the client measured) of each request that got a response."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_and_drive(args: list[str], port: int, plan: list[tuple[str, str]], tmp_path: Path,
                    env: dict[str, str]) -> Made:
    """Start the server, wait for it, send ``plan`` from 4 clients 20 times, stop it."""
    made: Made = collections.defaultdict(list)
    lock = threading.Lock()
    base = f"http://127.0.0.1:{port}"
    probe_path, probe_endpoint = plan[0]

    def get(http: httpx.Client, path: str, endpoint: str) -> None:
        t0 = time.perf_counter_ns()
        # a connection per request: a server may close one after an application error
        status = http.get(path, headers={"Connection": "close"}).status_code
        with lock:
            made[endpoint].append((status, time.perf_counter_ns() - t0))

    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, "the server exited:\n" + log.read_text()
                try:
                    get(http, probe_path, probe_endpoint)
                    break
                except httpx.TransportError:  # not up: the request reached no application
                    assert time.monotonic() < deadline, "no server:\n" + log.read_text()
                    time.sleep(0.1)

        def client() -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                for _ in range(20):
                    for path, endpoint in plan:
                        get(http, path, endpoint)

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
    finally:
        stop_process(server)  # SIGTERM: each worker exits, sealing its last window
    assert server.returncode in (0, -15), log.read_text()
    print("--- server log", log.read_text()[-3000:], sep="\n")  # shown if the test fails
    return made


def read_windows(directory: Path) -> dict[int, list[dict[str, Any]]]:
    """pid -> the windows its file holds, in the order written."""
    return {int(path.stem): [json.loads(line) for line in path.read_text().splitlines()]
            for path in directory.glob("*.jsonl")}


def check(windows: dict[int, list[dict[str, Any]]], made: Made, workers: int) -> None:
    for pid, held in windows.items():  # shown if the test fails
        print(pid, [(round(w["end"] - w["start"], 3),
                     {e: s["requests"] for e, s in w["summary"]["endpoints"].items()})
                    for w in held])
    print("made", {e: len(r) for e, r in made.items()})
    assert len(windows) == workers, list(windows)
    for pid, held in windows.items():
        assert all(w["pid"] == pid for w in held)
        starts = [w["start"] for w in held]
        assert starts == sorted(starts)  # in order, each once
        assert all(a["end"] <= b["start"] + 1e-3 for a, b in itertools.pairwise(held))
    total = merge(WindowSummary.from_dict(w["summary"])
                  for held in windows.values() for w in held)
    assert set(total.endpoints) == set(made)
    for endpoint, requests in made.items():
        got = total.endpoints[endpoint]
        assert got.requests == len(requests), endpoint
        assert got.errors == sum(1 for status, _ in requests if status >= 500), endpoint
        assert SLEEP * 1e9 * len(requests) <= got.wall_ns <= sum(w for _, w in requests), endpoint
        assert sum(got.latency) == len(requests)


def server_env(python_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    windows = tmp_path / "windows"
    windows.mkdir()
    env = dict(python_env, EMBER_TEST_WINDOWS=str(windows), EMBER_RATE="100")
    env["PYTHONPATH"] = f"{APPS}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(APPS)
    env.pop("EMBER_DISABLE", None)
    return env


def test_gunicorn_flask_workers_windows_hold_the_requests(
        tmp_path: Path, python_env: dict[str, str]) -> None:
    env = server_env(python_env, tmp_path)
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--chdir", str(APPS), "-b",
            f"127.0.0.1:{port}", "-w", "2", "-k", "sync", "--graceful-timeout", "10",
            "flask_app:app"]
    plan = [("/items/1", "GET /items/{item_id}"), ("/items/2", "GET /items/{item_id}"),
            ("/boom", "GET /boom"), ("/unavailable", "GET /unavailable")]
    made = serve_and_drive(args, port, plan, tmp_path, env)
    assert {e: {s for s, _ in r} for e, r in made.items()} == {
        "GET /items/{item_id}": {200}, "GET /boom": {500}, "GET /unavailable": {503}}
    check(read_windows(tmp_path / "windows"), made, workers=2)


def test_uvicorn_fastapi_windows_hold_the_requests(
        tmp_path: Path, python_env: dict[str, str]) -> None:
    env = server_env(python_env, tmp_path)
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(APPS),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    plan = [("/items/1", "GET /items/{item_id}"), ("/sync", "GET /sync"),
            ("/boom", "GET /boom"), ("/unavailable", "GET /unavailable")]
    made = serve_and_drive(args, port, plan, tmp_path, env)
    assert {e: {s for s, _ in r} for e, r in made.items()} == {
        "GET /items/{item_id}": {200}, "GET /sync": {200}, "GET /boom": {500},
        "GET /unavailable": {503}}
    check(read_windows(tmp_path / "windows"), made, workers=1)


def test_gunicorn_workers_write_one_store_file(tmp_path: Path, python_env: dict[str, str]
                                             ) -> None:
    """EMBER_STORE: four gunicorn workers write their windows into one SQLite file;
    it holds every worker, and the merged query is exactly the sum of the
    per-worker ones, samples and summaries."""
    from ember.profile import merge as merge_profiles
    from ember.store.sqlite import SqliteStore

    env = server_env(python_env, tmp_path)
    env["EMBER_STORE"] = str(tmp_path / "ember.db")
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--chdir", str(APPS), "-b",
            f"127.0.0.1:{port}", "-w", "4", "-k", "sync", "--graceful-timeout", "10",
            "flask_app:app"]
    plan = [("/items/1", "GET /items/{item_id}"), ("/boom", "GET /boom"),
            ("/unavailable", "GET /unavailable")]
    made = serve_and_drive(args, port, plan, tmp_path, env)
    pids = set(read_windows(tmp_path / "windows"))  # the workers that sealed windows
    store = SqliteStore(tmp_path / "ember.db")
    try:
        assert {w.pid for w in store.workers()} == pids and len(pids) == 4
        whole = store.query()
        each = [store.query(pid=pid) for pid in sorted(pids)]
        # samples and values exactly (metadata such as GC seconds is summed in another order)
        assert whole.profile.canonical() == merge_profiles(r.profile for r in each).canonical()
        assert whole.profile.totals().samples > 0
        assert whole.summary == merge(r.summary for r in each)
        assert whole.windows == sum(r.windows for r in each)
        for endpoint, requests in made.items():
            assert whole.summary.endpoints[endpoint].requests == len(requests), endpoint
    finally:
        store.close()
