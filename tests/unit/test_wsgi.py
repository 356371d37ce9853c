"""The WSGI middleware in process: PEP 3333, closing, labels, caps, fault isolation."""

from __future__ import annotations

import io
import threading
import time
import wsgiref.util
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import flask
import pytest

import ember
from ember import middleware
from ember.attribution import BACKGROUND, OTHER, registry
from ember.flask import init_app
from ember.wsgi import EmberMiddleware, route_template, set_route

pytestmark = pytest.mark.usefixtures("clean_registry")

App = Callable[..., Iterable[bytes]]


def make_environ(path: str = "/", method: str = "GET") -> dict[str, Any]:
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    environ["REQUEST_METHOD"] = method
    environ["QUERY_STRING"] = ""
    environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    return environ


def call(app: App, path: str = "/", method: str = "GET") -> tuple[str, bytes]:
    """A tiny WSGI server: one request, the body, and close() as PEP 3333 asks."""
    statuses: list[str] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return written.append

    result = app(make_environ(path, method), start_response)
    try:
        chunks = list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return statuses[-1], b"".join(written) + b"".join(chunks)


HEADERS = [("Content-Type", "text/plain")]


def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", HEADERS)
    for i in range(3):
        yield b"chunk%d;" % i


def write_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    write = start_response("200 OK", HEADERS)
    write(b"written;")
    return [b"returned"]


def file_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return environ["wsgi.file_wrapper"](io.BytesIO(b"file body " * 100), 64)


@pytest.mark.parametrize(("app", "body"), [
    (streaming_app, b"chunk0;chunk1;chunk2;"),
    (write_app, b"written;returned"),
    (file_app, b"file body " * 100),
])
def test_pep3333_validator_passes(app: App, body: bytes,
                                  finished: list[middleware.Request]) -> None:
    wrapped = validator(EmberMiddleware(validator(app), start_sampler=False))
    assert call(wrapped, "/items/42") == ("200 OK", body)
    assert [(r.endpoint, r.status) for r in finished] == [("GET /items/{id}", 200)]


def test_exception_before_start_response_propagates(finished: list[middleware.Request]) -> None:
    error = ValueError("boom")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise error

    with pytest.raises(ValueError) as raised:
        call(validator(EmberMiddleware(validator(app), start_sampler=False)))
    assert raised.value is error
    assert [r.status for r in finished] == [500]
    assert registry.labels_of(threading.get_ident()) == (("endpoint", BACKGROUND),)


def test_exception_after_start_response_propagates(finished: list[middleware.Request]) -> None:
    error = KeyError("late")

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", HEADERS)
        yield b"first"
        raise error

    with pytest.raises(KeyError) as raised:
        call(validator(EmberMiddleware(validator(app), start_sampler=False)))
    assert raised.value is error
    assert [r.status for r in finished] == [200]  # ended by close(), exactly once
    assert registry.labels_of(threading.get_ident()) == (("endpoint", BACKGROUND),)


class Body:
    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"a", b"b"])

    def close(self) -> None:
        self.closed += 1


def test_iterable_closed_exactly_once_then_request_ends(
        finished: list[middleware.Request]) -> None:
    body = Body()
    during: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("201 Created", HEADERS)
        return body

    result = EmberMiddleware(app, start_sampler=False)(make_environ("/x"), lambda *a: None)
    assert b"".join(result) == b"ab"
    during.append(registry.labels_of(threading.get_ident()))
    assert not finished  # the body is not closed yet: the request is still running
    result.close()  # type: ignore[attr-defined]
    result.close()  # type: ignore[attr-defined]
    assert body.closed == 1
    assert [(r.endpoint, r.status) for r in finished] == [("GET /x", 201)]
    assert during == [(("endpoint", "GET /x"),)]


def test_file_wrapper_passes_through_and_still_ends(finished: list[middleware.Request]) -> None:
    stream = io.BytesIO(b"data " * 50)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", HEADERS)
        return environ["wsgi.file_wrapper"](stream, 16)

    result = EmberMiddleware(app, start_sampler=False)(make_environ("/f"), lambda *a: None)
    assert isinstance(result, wsgiref.util.FileWrapper)  # the sendfile fast path stays
    assert result.filelike is stream
    assert b"".join(result) == b"data " * 50
    assert not finished
    result.close()
    result.close()
    assert stream.closed
    assert [r.endpoint for r in finished] == ["GET /f"]


def test_route_hook_relabels_the_request(finished: list[middleware.Request]) -> None:
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(registry.labels_of(threading.get_ident()))
        set_route(environ, "/items/{item_id}")  # what a framework integration does
        seen.append(registry.labels_of(threading.get_ident()))
        start_response("200 OK", HEADERS)
        return [b"ok"]

    def late_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["ember.route"] = "/late/{id}"  # only the key: read at start_response
        start_response("200 OK", HEADERS)
        return [b"ok"]

    assert call(EmberMiddleware(app, start_sampler=False), "/items/7") == ("200 OK", b"ok")
    assert seen == [(("endpoint", "GET /items/{id}"),), (("endpoint", "GET /items/{item_id}"),)]
    call(EmberMiddleware(late_app, start_sampler=False), "/late/abc", method="POST")
    assert [r.endpoint for r in finished] == ["GET /items/{item_id}", "POST /late/{id}"]


def test_label_callable_gives_the_provisional_endpoint(
        finished: list[middleware.Request]) -> None:
    app = EmberMiddleware(write_app, start_sampler=False,
                          label=lambda environ: "checkout " + environ["REQUEST_METHOD"])
    call(app, "/anything/123")
    assert [r.endpoint for r in finished] == ["checkout GET"]


@pytest.mark.parametrize(("route", "template"), [
    ("/items/<int:item_id>", "/items/{item_id}"),
    ("items/<int:item_id>", "/items/{item_id}"),
    ("/files/<path:name>/raw", "/files/{name}/raw"),
    ("/<any(a, b):kind>/<slug>", "/{kind}/{slug}"),
    ("^items/(?P<pk>[0-9]+)/$", "/items/{pk}/"),
    (r"^a/(\d+)/(?P<x>(?:ab|c)+)\Z", "/a/{}/{x}"),
    ("/", "/"),
    ("", "/"),
])
def test_route_template(route: str, template: str) -> None:
    assert route_template(route) == template


def burn(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    end = time.thread_time() + 0.0002
    while time.thread_time() < end:
        sum(range(100))
    start_response("200 OK", HEADERS)
    return [environ["PATH_INFO"].encode()]


def test_raw_paths_are_normalised_and_capped(finished: list[middleware.Request]) -> None:
    cap = 50
    app = EmberMiddleware(burn, max_endpoints=cap, rate=1000, budget=0, window=0)
    try:
        for i in range(10_000):
            path = f"/p/{i}/x{i}y"  # the id is normalised, "x{i}y" is not: 10,000 routes
            assert call(app, path) == ("200 OK", path.encode())
    finally:
        profile = ember.stop()
    assert len(registry.endpoints()) <= cap
    assert "GET /p/{id}/x0y" in registry.endpoints()
    labels = {r.endpoint for r in finished}
    assert OTHER in labels
    assert len(labels) <= cap + 1
    in_samples = profile.label_values("endpoint")
    assert OTHER in in_samples
    assert len(in_samples) <= cap + 2  # the routes, other and background


def test_made_up_methods_share_one_label(finished: list[middleware.Request]) -> None:
    """Clients choose methods freely: labels and metrics must stay bounded."""
    from prometheus_client import CollectorRegistry

    from ember import metrics

    prom = CollectorRegistry()
    observer = metrics.install(prom, top_k=2)
    app = EmberMiddleware(burn, start_sampler=False, metrics=False)
    try:
        for i in range(1_000):
            assert call(app, "/x", method=f"M{i}") == ("200 OK", b"/x")
        assert call(app, "/x", method="PATCH") == ("200 OK", b"/x")
    finally:
        observer.close()
    assert registry.endpoints() == {"_OTHER /x", "PATCH /x"}
    assert {(r.method, r.endpoint) for r in finished} == {
        ("_OTHER", "_OTHER /x"), ("PATCH", "PATCH /x")}
    count = "ember_request_duration_seconds_count"
    assert prom.get_sample_value(count, {"endpoint": "_OTHER /x", "method": "_OTHER"}) == 1_000
    assert prom.get_sample_value(count, {"endpoint": "PATCH /x", "method": "PATCH"}) == 1
    series = {tuple(sorted(s.labels.items())) for fam in prom.collect()
              for s in fam.samples if s.name == count}
    assert len(series) == 2


def test_requests_leave_no_garbage_cycles() -> None:
    """The middleware must not tie a request's environ into a reference cycle:
    everything it reaches would then wait for the garbage collector."""
    import gc

    def ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", HEADERS)
        return [b"ok"]

    app = EmberMiddleware(ok, start_sampler=False, metrics=True)
    assert call(app, "/warm") == ("200 OK", b"ok")
    gc.collect()
    gc.disable()
    try:
        for i in range(100):
            assert call(app, f"/items/{i}") == ("200 OK", b"ok")
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0


FAULTS: dict[str, tuple[object, str]] = {
    "begin": (middleware, "begin"),
    "end": (middleware, "end"),
    "relabel": (middleware, "relabel"),
    "registry.endpoint": (registry, "endpoint"),
    "registry.enter_thread": (registry, "enter_thread"),
    "registry.exit_thread": (registry, "exit_thread"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_requests_succeed_while_ember_fails(fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"injected fault in {fault}")

    target, name = FAULTS[fault]
    monkeypatch.setattr(target, name, broken)
    monkeypatch.setattr(middleware, "errors", 0)
    monkeypatch.setattr(middleware.log, "disabled", True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        set_route(environ, "/r/{n}")
        write = start_response("200 OK", HEADERS)
        write(b"w")
        yield environ["PATH_INFO"].encode()

    wrapped = EmberMiddleware(app, start_sampler=False)
    for i in range(10_000):
        assert call(wrapped, f"/r/{i}") == ("200 OK", b"w/r/%d" % i)
    assert middleware.errors >= 10_000  # every failure was counted, none escaped


def test_flask_routes_label_requests(finished: list[middleware.Request]) -> None:
    app = flask.Flask("ember-test")
    labels: list[object] = []

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        labels.append(registry.labels_of(threading.get_ident()))
        return str(item_id)

    init_app(app, start_sampler=False)
    client = app.test_client()
    assert client.get("/items/5", buffered=True).data == b"5"  # buffered: closes the body
    assert client.get("/nowhere/5", buffered=True).status_code == 404
    assert client.post("/items/5", buffered=True).status_code == 405
    assert labels == [(("endpoint", "GET /items/{item_id}"),)]
    assert [(r.endpoint, r.status) for r in finished] == [
        ("GET /items/{item_id}", 200), ("GET [unmatched]", 404), ("POST [unmatched]", 405)]
