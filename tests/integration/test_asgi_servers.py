"""ember.asgi under a real server: uvicorn serving a FastAPI app in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ember
from support import share_in, stop_process

PYTHON = sys.executable

APPS = Path(__file__).parent / "asgi_apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, python_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    port = free_port()
    dump = tmp_path / "profile.pb.gz"
    env = dict(python_env, EMBER_TEST_DUMP=str(dump))
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "server_app:app", "--app-dir", str(APPS),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                httpx.get(base + "/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
        yield base, dump
    finally:
        stop_process(proc)


def test_uvicorn_fastapi_requests_are_attributed(server: tuple[str, Path]) -> None:
    base, dump = server
    failures: list[str] = []
    counts = {"/alpha": 0, "/beta": 0, "/sync/7": 0, "/fanout": 0}

    def client(path: str, stop_at: float) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < stop_at:
                r = http.get(path)
                if r.status_code != 200:
                    failures.append(f"{path}: {r.status_code} {r.text}")
                counts[path] += 1

    stop_at = time.monotonic() + 2.0
    # two clients per asyncio route: concurrent requests interleave on one loop
    threads = [threading.Thread(target=client, args=(p, stop_at))
               for p in ("/alpha", "/alpha", "/beta", "/beta", "/sync/7", "/sync/7",
                         "/fanout")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert all(n > 3 for n in counts.values()), counts

    r = httpx.post(base + "/_ember/dump", timeout=30)
    assert r.status_code == 200, r.text
    profile = ember.load(dump)
    for function, endpoint in [("burn_alpha", "GET /alpha"),
                               ("burn_beta", "GET /beta"),
                               ("burn_sync", "GET /sync/{item_id}"),
                               ("burn_dependency", "GET /sync/{item_id}"),
                               # in tasks the request created (gather, nested create_task)
                               ("burn_child", "GET /fanout")]:
        share, n = share_in(profile, function, endpoint)
        assert share > 0.95, (function, endpoint, share, n)
        assert n >= 5, (function, n)  # enough samples for the share to mean something
        print(function, endpoint, f"{share:.3f}", n)
    endpoints = profile.label_values("endpoint")
    # Relabelled at routing, before the handler ran: the provisional label holds
    # only what ran between the request's start and routing.
    provisional = profile.filter(endpoint="GET /sync/{id}").totals().samples
    assert provisional <= 0.02 * profile.totals().samples, provisional
    assert {"GET /alpha", "GET /beta", "GET /sync/{item_id}", "GET /fanout"} <= endpoints
