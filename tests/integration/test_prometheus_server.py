"""Acceptance: a real Prometheus server scrapes a gunicorn app with 2 workers, and a
PromQL query over ember_function_self_seconds_total finds the known hot function
of its endpoint, with both workers' data in it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

APPS = Path(__file__).parent / "prom_apps"
PROMETHEUS = shutil.which("prometheus")
HOT = "burn_hot_loop (prom_apps/hotapp.py:"

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the `prometheus` binary is not installed (Debian: apt-get install prometheus)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


@contextlib.contextmanager
def process(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    payload = response.json()
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def test_prometheus_scrapes_hot_function_of_both_gunicorn_workers(tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    app_port, prom_port = free_port(), free_port()
    mpdir = tmp_path / "multiproc"
    mpdir.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(mpdir),
        "PROM_APP_BIND": f"127.0.0.1:{app_port}",
        "EMBER_WINDOW": "1",
        "EMBER_RATE": "200",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")])),
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ember\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n")
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(APPS / "gunicorn_conf.py"),
                "--chdir", str(APPS), "hotapp:app"]
    prometheus = [PROMETHEUS, f"--config.file={config}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{prom_port}"]

    with process(gunicorn, tmp_path / "gunicorn.log", env=env), \
            process(prometheus, tmp_path / "prometheus.log"), \
            httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=10) as app, \
            httpx.Client(base_url=f"http://127.0.0.1:{prom_port}", timeout=10) as prom:
        try:
            wait_for("gunicorn", lambda: app.get("/light").status_code == 200, 20)
            wait_for("prometheus", lambda: prom.get("/-/ready").status_code == 200, 20)

            # Load both workers: concurrent requests until both pids answered /burn.
            pids: dict[int, int] = {}
            with ThreadPoolExecutor(8) as pool:
                deadline = time.monotonic() + 20
                while (len(pids) < 2 or sum(pids.values()) < 60) and time.monotonic() < deadline:
                    for r in pool.map(lambda _: app.get("/burn").json(), range(16)):
                        pids[r["pid"]] = pids.get(r["pid"], 0) + 1
                    app.get("/light")
            assert len(pids) == 2, f"not both workers served /burn: {pids}"

            promql = 'sum by (endpoint, function) (ember_function_self_seconds_total)'

            def hot_rows() -> dict[str, float]:
                rows = {r["metric"]["function"]: float(r["value"][1])
                        for r in query(prom, promql)
                        if r["metric"].get("endpoint") == "GET /burn"}
                return rows if any(f.startswith(HOT) for f in rows) else {}

            wait_for("the hot function in Prometheus", hot_rows, 20)

            # Each worker's own contribution (read from the worker itself) until the
            # windows holding the load are all sealed and fed, and scraped.
            def own_values() -> dict[int, float]:
                own: dict[int, float] = {}
                for _ in range(40):
                    r = app.get("/own").json()
                    own[r["pid"]] = sum(v for f, v in r["own"].items() if f.startswith(HOT))
                    if len(own) == 2:
                        return own
                return {}

            def settled() -> tuple[dict[str, float], dict[int, float]] | None:
                before = own_values()
                time.sleep(2.5)  # > window + feeder poll + scrape interval
                rows, after = hot_rows(), own_values()
                prom_hot = sum(v for f, v in rows.items() if f.startswith(HOT))
                if before and before == after and \
                        prom_hot == pytest.approx(sum(after.values()), rel=1e-6):
                    return rows, after
                return None

            rows, own = wait_for("the values to settle", settled, 30)
            top = max(rows, key=lambda f: rows[f])
            assert top.startswith(HOT), rows
            assert set(own) == set(pids)
            assert all(v > 0 for v in own.values()), own  # both workers contributed
            burned = 0.05 * sum(pids.values())
            assert 0.5 * burned < sum(own.values()) < 1.5 * burned, (own, burned)

            count = query(prom, 'sum(ember_request_duration_seconds_count{endpoint="GET /burn"})')
            assert float(count[0]["value"][1]) == sum(pids.values())
            assert query(prom, "ember_sampler_interval_seconds")
        except BaseException:
            for name in ("gunicorn.log", "prometheus.log"):
                print(f"--- {name}", (tmp_path / name).read_text()[-3000:], sep="\n")
            raise
