"""ember.autostart: the one place that starts ember for the middleware and wires
the sinks; the process-wide sinks follow the sampler across restarts; no import
circle between the middleware and the exporters."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ember import api, autostart, metrics, middleware
from ember.asgi import EmberMiddleware as AsgiMiddleware
from ember.attribution import registry
from ember.window import Window
from ember.wsgi import EmberMiddleware as WsgiMiddleware

pytestmark = pytest.mark.usefixtures("clean_registry")

SRC = Path(autostart.__file__).parent


class ListSink:
    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.flushes = 0

    def window_sealed(self, window: Window) -> None:
        self.windows.append(window)

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def stopped() -> Iterator[None]:
    """No process-wide sampler before, none left after."""
    assert api.current() is None
    yield
    if api.current() is not None:
        api.stop()


@pytest.mark.usefixtures("stopped")
def test_ensure_started_starts_once_and_feeds_the_metrics() -> None:
    sampler = autostart.ensure_started(window=0.05, rate=100)
    installed = metrics.installed()
    try:
        assert sampler is not None and sampler is api.current() and sampler.running
        assert installed is not None and any(s is installed.sink for s in sampler.sinks)
        assert autostart.ensure_started() is sampler  # idempotent
        assert autostart.ensure_started(window=1.0) is sampler  # a running one is kept
        assert registry.active
        request = middleware.begin("GET", "GET /auto")
        middleware.end(request, 200)
        api.stop()
        assert installed.flush()
        assert installed.sink.handled >= 1
        # the request reached the window summaries of the process-wide sampler
        assert sum(w.summary.endpoints["GET /auto"].requests for w in sampler.windows()
                   if "GET /auto" in w.summary.endpoints) == 1
    finally:
        if installed is not None:
            installed.close()


@pytest.mark.usefixtures("stopped")
def test_ensure_started_without_starting_applies_the_label_settings() -> None:
    assert autostart.ensure_started(False, metrics=False, max_new_paths=7,
                                    max_endpoints=50) is None
    assert api.current() is None
    assert registry.active
    assert (registry.max_new_paths, registry.max_endpoints) == (7, 50)


@pytest.mark.usefixtures("stopped")
def test_process_wide_sinks_follow_every_sampler_started() -> None:
    sink = ListSink()
    api.add_sink(sink)
    api.add_sink(sink)
    try:
        first = api.start(window=0)
        assert first is not None
        middleware.end(middleware.begin("GET", "GET /one"), 200)
        api.stop()
        second = api.start(window=0)
        assert second is not None and second is not first
        middleware.end(middleware.begin("GET", "GET /two"), 200)
        api.stop()
    finally:
        api.remove_sink(sink)
    assert [list(w.summary.endpoints) for w in sink.windows] == [["GET /one"], ["GET /two"]]
    assert sink.flushes == 2
    third = api.start(window=0)
    assert third is not None and third.sinks == []


@pytest.mark.usefixtures("stopped")
def test_the_adapters_start_ember_through_autostart() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wsgi = WsgiMiddleware(app, metrics=False, window=0, max_endpoints=77)
    assert api.current() is None  # on the first request of each process
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    result = wsgi(environ, lambda status, headers, exc_info=None: None)
    list(result)
    result.close()  # type: ignore[attr-defined]
    assert api.current() is not None and registry.max_endpoints == 77
    api.stop()

    AsgiMiddleware(app, metrics=False, window=0)  # type: ignore[arg-type]
    assert api.current() is not None
    api.stop()


# -- the import graph -------------------------------------------------------------------
def imports(path: Path) -> tuple[set[str], set[str]]:
    """Modules ``path`` imports from ember at module level, and inside functions."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    inner: set[str] = set()

    def names(node: ast.AST) -> set[str]:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ember"):
            if node.module == "ember":
                return {f"ember.{a.name}" for a in node.names}
            return {node.module}
        if isinstance(node, ast.Import):
            return {a.name for a in node.names if a.name.startswith("ember")}
        return set()

    for node in tree.body:
        top |= names(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inside in ast.walk(node):
                inner |= names(inside)
    return top, inner


def test_no_import_circle_between_middleware_and_exporters() -> None:
    top, inner = imports(SRC / "middleware.py")
    assert not inner
    assert not top & {"ember.api", "ember.sampler", "ember.metrics", "ember.autostart"}
    for adapter in ("wsgi.py", "asgi.py", "django.py", "flask.py"):
        top, inner = imports(SRC / adapter)
        assert "ember.metrics" not in top | inner, adapter
        assert not inner, adapter
    top, inner = imports(SRC / "metrics.py")
    assert "ember.autostart" not in top and not inner
    top, inner = imports(SRC / "autostart.py")
    # imported when wanted: prometheus-client is optional, the store only with EMBER_STORE
    assert inner == {"ember.metrics", "ember.store", "ember.store.sink"}
