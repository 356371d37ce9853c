"""ember.metrics in prometheus-client's multiprocess mode: worker processes write
their values to ``PROMETHEUS_MULTIPROC_DIR`` and one collector sums them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


MULTIPROC_CHILD = textwrap.dedent("""
    import sys
    from ember import metrics, middleware
    from ember.profile import Frame, Metadata, Profile, make_labels
    m = metrics.install()
    p = Profile(Metadata(period=0.01, mode="cpu"))
    p.add([Frame("hot", "/x/app.py", 3)], samples=10, cpu_ns=int(sys.argv[1]) * 10**9,
          labels=make_labels({"endpoint": "GET /a"}))
    metrics.update_from_window(p)
    m.observe_request(middleware.Request("GET", "GET /a", duration_s=0.1, cpu_s=0.05))
    m.overhead.set(float(sys.argv[1]) / 100)
    m.close()
""")


def test_multiprocess_mode(tmp_path: Path) -> None:
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    for seconds in ("2", "3"):
        subprocess.run([sys.executable, "-c", MULTIPROC_CHILD, seconds], env=env,
                       check=True, timeout=60)
    assert list(mpdir.glob("*.db"))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(mpdir))
    assert value(registry, "ember_function_self_seconds_total", endpoint="GET /a",
                 function="hot (x/app.py:3)") == pytest.approx(5.0)
    assert value(registry, "ember_request_duration_seconds_count",
                 endpoint="GET /a", method="GET") == 2
    assert value(registry, "ember_samples_total", kind="cpu") == 20
