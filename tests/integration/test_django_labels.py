"""A real Django site under gunicorn, probed by a scanner: its 404s share
``GET [unmatched]`` and the real routes keep their own labels."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_wsgi_servers import fetch_profile, gunicorn, load, server_env

pytestmark = pytest.mark.slow

__all__ = ["server_env"]  # the fixture, used by name

SCANNED = 600
"""More made-up paths than the 200 labels ember makes at most."""


def request_counts(base: str) -> dict[str, float]:
    """Requests per endpoint label, from the app's own /metrics."""
    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    return {sample.labels["endpoint"]: sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "ember_request_duration_seconds_count"}


def test_django_404s_from_a_scanner_share_one_label(
        tmp_path: Path, server_env: dict[str, str]) -> None:
    with gunicorn("ember_django_wsgi:application", "gthread", tmp_path, server_env) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(SCANNED):
                path = f"/wp-admin/setup-{i}.php" if i % 2 else f"/.env.{i}.bak"
                assert client.get(path).status_code == 404
        done = load(base, ["/alpha", "/beta/3", "/items/17"], seconds=1.0)
        assert all(n > 2 for n in done.values()), done
        counts = request_counts(base)
        profile = fetch_profile(base)
    assert counts["GET [unmatched]"] == SCANNED
    # a request is counted when the server closes its response, just after the
    # client has it: each client's last one may not be counted yet
    for label, path in (("GET /items/{item_id}", "/items/17"), ("GET /beta/{pk}", "/beta/3")):
        assert done[path] - 2 <= counts[label] <= done[path], (label, counts, done)
    assert set(counts) <= {"GET /alpha", "GET /beta/{pk}", "GET /items/{item_id}",
                           "GET [unmatched]", "GET /metrics", "GET /_profile"}, counts
    labels = profile.label_values("endpoint")
    assert {"GET /beta/{pk}", "GET /items/{item_id}"} <= labels
    assert not any("wp-admin" in label or ".env" in label for label in labels), labels
