"""Real gunicorn serving Flask and Django apps: samples land in their own endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import ember
from ember import Profile
from support import share_in, stop_process

APPS = Path(__file__).parent / "apps"
LOAD_SECONDS = 2.0

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(app: str, worker: str, tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """Serve ``app`` with one gunicorn worker; yields the base URL."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    args = [sys.executable, "-m", "gunicorn", "--pythonpath", str(APPS),
            "-b", f"127.0.0.1:{port}", "-w", "1", "-k", worker, "--timeout", "60"]
    if worker == "gthread":
        args += ["--threads", "4"]
    with open(log, "wb") as out:
        server = subprocess.Popen([*args, app], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, "gunicorn exited:\n" + log.read_text()
            try:
                if httpx.get(base + "/alpha", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start:\n" + log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        stop_process(server)


def load(base: str, paths: list[str], seconds: float = LOAD_SECONDS) -> dict[str, int]:
    """Concurrent clients, one per path, for ``seconds``; successful requests per path."""
    done = {p: 0 for p in paths}
    failures: list[str] = []
    stop = time.monotonic() + seconds

    def client(path: str) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            while time.monotonic() < stop:
                response = http.get(path)
                if response.status_code == 200:
                    done[path] += 1
                else:
                    failures.append(f"{path}: {response.status_code}")

    threads = [threading.Thread(target=client, args=(p,)) for p in paths for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    return done


def fetch_profile(base: str) -> Profile:
    response = httpx.get(base + "/_profile", timeout=10)
    assert response.status_code == 200, response.text
    return ember.load(response.text)


@pytest.fixture
def server_env(python_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(python_env)
    env.update(EMBER_RATE="250", EMBER_BUDGET="0",
               EMBER_TEST_PROFILE=str(tmp_path / "worker.pb.gz"))
    env.pop("EMBER_DISABLE", None)
    return env


def check_metrics(base: str, endpoint: str) -> None:
    """The app's own /metrics (served as the README shows) holds ember's request series."""
    response = httpx.get(base + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    wanted = f'ember_request_cpu_seconds_count{{endpoint="{endpoint}",method="GET"}}'
    counts = [float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines()
              if line.startswith(wanted)]
    assert counts and counts[0] > 5, response.text[:2000]


def check_attribution(profile: Profile, expected: dict[str, str]) -> None:
    shares = {function: share_in(profile, function, endpoint)[0]
              for function, endpoint in expected.items()}
    assert all(share > 0.95 for share in shares.values()), shares


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_flask_samples_land_in_their_endpoint(
        worker: str, tmp_path: Path, server_env: dict[str, str]) -> None:
    with gunicorn("ember_flask_app:app", worker, tmp_path, server_env) as base:
        done = load(base, ["/alpha", "/beta", "/items/17"])
        assert all(n > 5 for n in done.values()), done
        profile = fetch_profile(base)
        check_metrics(base, "GET /items/{item_id}")
    endpoints = profile.label_values("endpoint")
    assert {"GET /alpha", "GET /beta", "GET /items/{item_id}"} <= endpoints
    assert not any("/items/17" in e for e in endpoints), endpoints  # templates, not raw paths
    check_attribution(profile, {
        "burn_alpha": "GET /alpha",
        "burn_beta": "GET /beta",
        "burn_items": "GET /items/{item_id}",
    })


def test_gunicorn_django_samples_land_in_their_endpoint(
        tmp_path: Path, server_env: dict[str, str]) -> None:
    with gunicorn("ember_django_wsgi:application", "gthread", tmp_path, server_env) as base:
        done = load(base, ["/alpha", "/beta/3", "/items/17"])
        assert all(n > 5 for n in done.values()), done
        profile = fetch_profile(base)
        check_metrics(base, "GET /beta/{pk}")
    endpoints = profile.label_values("endpoint")
    assert {"GET /alpha", "GET /beta/{pk}", "GET /items/{item_id}"} <= endpoints
    check_attribution(profile, {
        "burn_alpha": "GET /alpha",
        "burn_beta": "GET /beta/{pk}",
        "burn_items": "GET /items/{item_id}",
    })
    assert os.path.exists(server_env["EMBER_TEST_PROFILE"])
