"""Endpoint labels built from what clients send: decoding, control characters,
length, and scanners (thousands of made-up paths) against the label caps.

Environs and scopes are built as the servers build them: a PEP 3333 server
percent-decodes the path and hands the bytes over as latin-1 text
(``urllib.parse.unquote(path, "latin-1")``, as wsgiref does); an ASGI server
hands over the decoded text in ``path`` and the bytes received in ``raw_path``.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI

from ember import Config, ConfigError, middleware
from ember.asgi import EmberMiddleware as AsgiMiddleware
from ember.attribution import (
    MAX_ROUTE_CHARS,
    OTHER,
    UNMATCHED,
    Attribution,
    clean_route,
    registry,
)
from ember.flask import init_app
from ember.wsgi import EmberMiddleware as WsgiMiddleware
from ember.wsgi import set_route
from sampling import FakeClock

pytestmark = pytest.mark.usefixtures("clean_registry")

CRLF_PATH = "/%0D%0ASet-Cookie:%20x=1"
CRLF_LABEL = "GET /\ufffd\ufffdSet-Cookie: x=1"


@pytest.fixture(autouse=True)
def rate_settings() -> Iterator[None]:
    """The registry's new-path cap and clock, restored after the test."""
    cap, clock = registry.max_new_paths, registry.clock
    yield
    registry.max_new_paths, registry.clock = cap, clock


def wsgi_environ(target: str, method: str = "GET") -> dict[str, Any]:
    """The environ a PEP 3333 server builds for the request target ``target``."""
    path, _, query = target.partition("?")
    return {"REQUEST_METHOD": method, "PATH_INFO": urllib.parse.unquote(path, "latin-1"),
            "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http"}


def asgi_scope(target: str, method: str = "GET") -> dict[str, Any]:
    """The scope an ASGI server (uvicorn, hypercorn) builds for ``target``."""
    raw, _, query = target.partition("?")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": urllib.parse.unquote(raw),
            "raw_path": raw.encode("ascii"), "root_path": "", "query_string": query.encode(),
            "headers": [], "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}


def start_response(status: str, headers: list[tuple[str, str]],
                   exc_info: Any = None) -> Callable[[bytes], object]:
    """A server's start_response (the body is not looked at)."""
    return len


def plain_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_labels(targets: list[str], finished: list[middleware.Request],
                app: WsgiMiddleware | None = None) -> list[str]:
    """The endpoint of each request to a plain WSGI app (no framework routes it)."""
    app = app or WsgiMiddleware(plain_wsgi, start_sampler=False, metrics=False)
    for target in targets:
        result = app(wsgi_environ(target), start_response)
        list(result)
        result.close()  # type: ignore[attr-defined]
    return [r.endpoint for r in finished[-len(targets):]]


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi_labels(scopes: list[dict[str, Any]], finished: list[middleware.Request]) -> list[str]:
    """The endpoint of each request to a plain ASGI app."""
    app = AsgiMiddleware(plain_asgi, start_sampler=False, metrics=False)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def main() -> None:
        for scope in scopes:
            await app(scope, receive, send)

    asyncio.run(main())
    return [r.endpoint for r in finished[-len(scopes):]]


# -- what a label may contain ------------------------------------------------------


def test_wsgi_paths_are_decoded_as_utf8(finished: list[middleware.Request]) -> None:
    assert wsgi_labels(["/caf%C3%A9/menu", "/%E2%82%AC/42", "/bad%FF%FEbytes"], finished) == [
        "GET /café/menu", "GET /€/{id}", "GET /bad\ufffd\ufffdbytes"]


def test_asgi_paths_keep_the_servers_decoding(finished: list[middleware.Request]) -> None:
    no_text = asgi_scope("/caf%C3%A9/7")
    del no_text["path"]  # only the bytes received: decoded as the servers decode them
    assert asgi_labels([asgi_scope("/caf%C3%A9/7"), no_text], finished) == [
        "GET /café/{id}", "GET /café/{id}"]


def test_control_characters_are_replaced(finished: list[middleware.Request]) -> None:
    assert wsgi_labels([CRLF_PATH], finished) == [CRLF_LABEL]
    assert asgi_labels([asgi_scope(CRLF_PATH)], finished) == [CRLF_LABEL]
    # a label callable's text, and a framework's route, get the same treatment
    app = WsgiMiddleware(plain_wsgi, start_sampler=False, metrics=False,
                         label=lambda environ: "tab\there\x1b[31m\u202e")
    list(app(wsgi_environ("/"), start_response))
    assert registry.endpoint("GET", "/bell\x07\u2028") == "GET /bell\ufffd\ufffd"
    assert "tab\ufffdhere\ufffd[31m\ufffd" in registry.endpoints()
    assert all(label.isprintable() for label in registry.endpoints())


def test_long_paths_are_cut_with_a_marker(finished: list[middleware.Request]) -> None:
    long = "/" + "a" * 5000
    wsgi, = wsgi_labels([long], finished)
    asgi, = asgi_labels([asgi_scope(long)], finished)
    assert wsgi == asgi == "GET " + clean_route(long)
    route = wsgi.removeprefix("GET ")
    assert len(route) == MAX_ROUTE_CHARS and route.endswith("…")
    assert route[:-1] == long[:MAX_ROUTE_CHARS - 1]
    # normalised first, then cut: ids do not use up the length
    ids = "/x" + "/12345678" * 100
    assert clean_route("/x" + "/{id}" * 100) == wsgi_labels([ids], finished)[0][4:]
    assert clean_route("short") == "short"


# -- scanners ----------------------------------------------------------------------


def scanner_paths(count: int) -> list[str]:
    """What vulnerability scanners ask for: words, not ids, so no normalising helps."""
    words = ["wp-admin", "phpmyadmin", "cgi-bin", ".env", "backup", "admin", "old", "test"]
    return [f"/{words[i % len(words)]}/setup-{i}x.php" for i in range(count)]


def test_a_scanner_cannot_use_up_the_labels_of_a_plain_app(
        finished: list[middleware.Request]) -> None:
    clock = FakeClock()
    registry.clock = lambda: clock.now / 1e9
    app = WsgiMiddleware(plain_wsgi, start_sampler=False, metrics=False, max_new_paths=30)
    assert wsgi_labels(["/orders/17"], finished, app) == ["GET /orders/{id}"]  # before the scan
    paths = iter(scanner_paths(9000))
    for _minute in range(3):  # 3,000 made-up paths a minute
        for i in range(3000):
            wsgi_labels([next(paths)], finished, app)
            clock.advance(60 / 3000)
            if i == 1500:  # mid-scan: labels given keep working, new ones wait
                assert wsgi_labels(["/orders/99", "/cart"], finished, app) == \
                    ["GET /orders/{id}", OTHER]
    assert len(registry.endpoints()) == 3 * 30
    # the scan is over: the real endpoints get their labels
    assert wsgi_labels(["/cart", "/checkout", "/orders/5"], finished, app) == \
        ["GET /cart", "GET /checkout", "GET /orders/{id}"]
    assert len(registry.endpoints()) == 3 * 30 + 2 < registry.max_endpoints


def test_new_path_cap_counts_per_minute_and_zero_admits_none() -> None:
    clock = FakeClock()
    reg = Attribution(max_endpoints=1000, max_new_paths=5, clock=lambda: clock.now / 1e9)
    first = [reg.path_endpoint("GET", f"/p{i}") for i in range(8)]
    assert first == [f"GET /p{i}" for i in range(5)] + [OTHER] * 3
    assert reg.path_endpoint("GET", "/p1") == "GET /p1"  # known: not counted again
    clock.advance(59.9)
    assert reg.path_endpoint("GET", "/p6") == OTHER
    clock.advance(0.2)
    assert [reg.path_endpoint("GET", f"/p{i}") for i in range(5, 12)] == \
        [f"GET /p{i}" for i in range(5, 10)] + [OTHER] * 2
    # route templates come from the application, not from clients: not rate-capped
    assert [reg.endpoint("GET", f"/t{i}") for i in range(20)] == [f"GET /t{i}" for i in range(20)]
    none = Attribution(max_new_paths=0)
    assert none.path_endpoint("GET", "/x") == OTHER
    assert none.endpoint("GET", "/x") == "GET /x"


def test_flask_404s_from_a_scanner_leave_the_routes_their_labels(
        finished: list[middleware.Request]) -> None:
    app = flask.Flask("ember-scanned")
    seen: list[object] = []

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        seen.append(registry.labels_of(threading.get_ident()))
        return str(item_id)

    init_app(app, start_sampler=False, metrics=False)
    client = app.test_client()
    assert client.get("/items/1", buffered=True).status_code == 200
    for path in scanner_paths(1000):
        assert client.get(path, buffered=True).status_code == 404
    assert client.get("/items/2", buffered=True).status_code == 200
    assert seen == [(("endpoint", "GET /items/{item_id}"),)] * 2
    assert [r.endpoint for r in finished] == \
        ["GET /items/{item_id}"] + [f"GET {UNMATCHED}"] * 1000 + ["GET /items/{item_id}"]
    assert not any("setup" in label for label in registry.endpoints()), registry.endpoints()
    assert registry.endpoints() == {"GET /items/{item_id}", "GET [unmatched]", "GET [unrouted]"}


def test_starlette_404s_from_a_scanner_leave_the_routes_their_labels(
        finished: list[middleware.Request]) -> None:
    app = FastAPI()
    app.add_middleware(AsgiMiddleware, start_sampler=False, metrics=False)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses = [(await client.get("/items/1")).status_code]
            for path in scanner_paths(600):
                statuses.append((await client.get(path)).status_code)
            statuses.append((await client.get("/items/2")).status_code)
            return statuses

    assert asyncio.run(main()) == [200] + [404] * 600 + [200]
    assert [r.endpoint for r in finished] == \
        ["GET /items/{item_id}"] + [f"GET {UNMATCHED}"] * 600 + ["GET /items/{item_id}"]
    assert not any("setup" in label for label in registry.endpoints()), registry.endpoints()


def test_an_app_that_routes_is_known_after_its_first_route(
        finished: list[middleware.Request]) -> None:
    """A WSGI integration of ember's own (set_route): once it routed a request,
    requests start as [unrouted]; one it does not route is [unmatched] if it is
    a 404, else its path's label (e.g. a health check answered before routing)."""
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(dict(registry.labels_of(threading.get_ident()) or ()).get("endpoint"))
        path = environ["PATH_INFO"]
        if path.startswith("/items/"):
            set_route(environ, "/items/{item_id}")
            status = "200 OK"
        else:
            status = "200 OK" if path == "/healthz" else "404 Not Found"
        start_response(status, [("Content-Type", "text/plain")])
        return [b""]

    wrapped = WsgiMiddleware(app, start_sampler=False, metrics=False)
    assert wsgi_labels(["/items/1", "/items/2", "/nope/1x", "/healthz"], finished, wrapped) == \
        ["GET /items/{item_id}", "GET /items/{item_id}", f"GET {UNMATCHED}", "GET /healthz"]
    assert seen == ["GET /items/{id}", "GET [unrouted]", "GET [unrouted]", "GET [unrouted]"]


# -- settings ----------------------------------------------------------------------


def test_middleware_settings_set_the_new_path_cap() -> None:
    WsgiMiddleware(plain_wsgi, start_sampler=False, metrics=False, max_new_paths=7)(
        wsgi_environ("/"), start_response)
    assert registry.max_new_paths == 7
    AsgiMiddleware(plain_asgi, start_sampler=False, metrics=False, max_new_paths=3)
    assert registry.max_new_paths == 3


@pytest.mark.parametrize("raw", ["-1", "many", "1.5"])
def test_nonsense_new_path_cap_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"(?i)max_new_paths"):
        Config.from_env({"EMBER_MAX_NEW_PATHS": raw})
    assert Config.from_env({"EMBER_MAX_NEW_PATHS": "0"}).max_new_paths == 0
