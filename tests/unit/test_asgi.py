"""ember.asgi in-process: labels, pass-through, streaming, trailers, errors, faults, caps."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

import ember
from ember import middleware
from ember.asgi import EmberMiddleware, install_threadpool_hook
from ember.attribution import BACKGROUND, OTHER, registry
from support import endpoint_here

pytestmark = pytest.mark.usefixtures("clean_registry")

Message = dict[str, Any]


def http_scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": [],
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}


async def drive(app: Any, scope: dict[str, Any],
                incoming: list[Message] | None = None) -> list[Message]:
    """Call an ASGI app with a hand-made receive/send; return what it sent."""
    queue = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_requests_leave_no_garbage_cycles() -> None:
    """As in WSGI: a request through the middleware leaves nothing to the GC."""
    import gc

    async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = EmberMiddleware(ok, start_sampler=False, metrics=True)

    async def requests() -> int:
        await drive(app, http_scope("/warm"))
        gc.collect()
        gc.disable()
        try:
            for i in range(100):
                sent = await drive(app, http_scope(f"/items/{i}"))
                assert sent[0]["status"] == 200
            return gc.collect()
        finally:
            gc.enable()

    assert asyncio.run(requests()) == 0


# -- labels -----------------------------------------------------------------------------
def test_route_templates_label_async_sync_and_dependencies(
        finished: list[middleware.Request]) -> None:
    seen: dict[str, str | None] = {}

    def sync_dependency() -> int:
        seen["dependency"] = endpoint_here()
        return 1

    app = FastAPI()
    app.add_middleware(EmberMiddleware, start_sampler=False)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        seen["async"] = endpoint_here()
        await asyncio.sleep(0)
        return {"item_id": item_id}

    @app.get("/sync/{item_id}")
    def sync(item_id: int, dep: int = Depends(sync_dependency)) -> dict[str, int]:
        seen["sync"] = endpoint_here()
        return {"item_id": item_id, "dep": dep}

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.get("/items/42"), await client.get("/sync/7")]

    registry.activate()
    responses = asyncio.run(main())
    assert [r.json() for r in responses] == [{"item_id": 42}, {"item_id": 7, "dep": 1}]
    # the template, not the normalised raw path ("/items/{id}"), while the handler runs
    assert seen == {"async": "GET /items/{item_id}", "dependency": "GET /sync/{item_id}",
                    "sync": "GET /sync/{item_id}"}
    assert [(r.endpoint, r.status) for r in finished] == [
        ("GET /items/{item_id}", 200), ("GET /sync/{item_id}", 200)]
    assert endpoint_here() == BACKGROUND  # nothing left registered


def test_mounted_routes_carry_the_mount_prefix(finished: list[middleware.Request]) -> None:
    async def item(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(str(endpoint_here()))

    async def raw(scope: Any, receive: Any, send: Any) -> None:  # a mounted non-router app
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(endpoint_here()).encode()})

    app = Starlette(routes=[
        Mount("/api", routes=[
            Route("/items/{item_id:int}", item),
            # the declared names of a mount's parameters, not the values
            Mount("/users/{user_id}", routes=[Route("/orders/{order_id}", item)]),
        ]),
        Mount("/raw", app=raw),
    ])
    app.add_middleware(EmberMiddleware, start_sampler=False)
    expected = {"/api/items/5": "GET /api/items/{item_id}",
                "/api/users/u-8f3a/orders/77": "GET /api/users/{user_id}/orders/{order_id}",
                "/raw/anything/here": "GET /raw/{path}"}
    for path, endpoint in expected.items():
        sent = asyncio.run(drive(app, http_scope(path)))
        assert sent[0]["status"] == 200
        assert sent[1]["body"] == endpoint.encode()
    assert [r.endpoint for r in finished] == list(expected.values())


def test_label_callable_and_unrouted_apps(finished: list[middleware.Request]) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asyncio.run(drive(EmberMiddleware(raw, start_sampler=False), http_scope("/users/123/x")))
    labelled = EmberMiddleware(raw, start_sampler=False, label=lambda scope: "/custom")
    asyncio.run(drive(labelled, http_scope("/users/123/x", "POST")))
    assert [(r.endpoint, r.status) for r in finished] == [
        ("GET /users/{id}/x", 204), ("POST /custom", 204)]


def test_middleware_starts_the_sampler() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    app.add_middleware(EmberMiddleware, rate=200, budget=0)
    try:
        sent = asyncio.run(drive(app, http_scope("/")))
        assert sent[1]["body"] == b"ok"
        assert ember.current() is not None
        assert registry.active
    finally:
        if ember.current() is not None:
            ember.stop()


def test_threadpool_hook_is_installed_once_and_idle_outside_requests() -> None:
    EmberMiddleware(PlainTextResponse("x"), start_sampler=False)
    hooked = anyio.to_thread.run_sync
    EmberMiddleware(PlainTextResponse("x"), start_sampler=False)
    assert install_threadpool_hook() is False
    assert anyio.to_thread.run_sync is hooked
    assert getattr(hooked, "__ember_wrapped__", False)
    registry.activate()

    async def outside() -> str | None:
        return await anyio.to_thread.run_sync(endpoint_here)

    assert asyncio.run(outside()) == BACKGROUND


# -- pass-through -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
def test_websocket_and_lifespan_pass_through_untouched(
        kind: str, finished: list[middleware.Request]) -> None:
    got: list[tuple[Any, Any, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        got.append((scope, receive, send))
        message = await receive()
        await send({"type": f"{kind}.echo", "got": message})

    scope = {"type": kind, "path": "/ws/1", "asgi": {"version": "3.0"}}
    before = dict(scope)
    incoming = [{"type": f"{kind}.connect" if kind == "websocket" else "lifespan.startup"}]
    queue = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(EmberMiddleware(inner, start_sampler=False)(scope, receive, send))
    assert got == [(scope, receive, send)]
    assert got[0][0] is scope and got[0][1] is receive and got[0][2] is send
    assert scope == before
    assert sent == [{"type": f"{kind}.echo", "got": incoming[0]}]
    assert finished == []


def test_streaming_chunks_pass_unchanged_and_end_once_after_the_last(
        finished: list[middleware.Request]) -> None:
    chunks = [b"a" * 10, b"", b"b" * 70_000, b"c"]
    messages = [{"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]}]
    messages += [{"type": "http.response.body", "body": c, "more_body": True} for c in chunks]
    messages.append({"type": "http.response.body", "body": b"end", "more_body": False})
    ended_at: list[int] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        for m in messages:
            await send(m)
            ended_at.append(len(finished))
        await asyncio.sleep(0)

    sent = asyncio.run(drive(EmberMiddleware(inner, start_sampler=False), http_scope("/s")))
    assert sent == messages
    assert all(a is b for a, b in zip(sent, messages, strict=True))
    assert ended_at == [0] * (len(messages) - 1) + [1]
    assert [(r.endpoint, r.status) for r in finished] == [("GET /s", 201)]


def test_trailers_pass_untouched_and_the_request_ends_after_them(
        finished: list[middleware.Request]) -> None:
    messages = [
        {"type": "http.response.start", "status": 200, "headers": [], "trailers": True},
        {"type": "http.response.body", "body": b"data", "more_body": False},
        {"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")],
         "more_trailers": True},
        {"type": "http.response.trailers", "headers": [(b"x-t", b"1")],
         "more_trailers": False},
    ]
    ended_at: list[int] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        for m in messages:
            await send(m)
            ended_at.append(len(finished))

    sent = asyncio.run(drive(EmberMiddleware(inner, start_sampler=False), http_scope("/t")))
    assert sent == messages and all(a is b for a, b in zip(sent, messages, strict=True))
    assert ended_at == [0, 0, 0, 1]
    assert [r.status for r in finished] == [200]


# -- errors and disconnects ---------------------------------------------------------------
def test_exceptions_propagate_unchanged(finished: list[middleware.Request]) -> None:
    error = ValueError("boom")

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise error

    with pytest.raises(ValueError) as caught:
        asyncio.run(drive(EmberMiddleware(inner, start_sampler=False), http_scope("/e")))
    assert caught.value is error
    assert [(r.endpoint, r.status) for r in finished] == [("GET /e", 500)]


def test_fastapi_handler_exception_is_a_500_response(finished: list[middleware.Request]) -> None:
    app = FastAPI()
    app.add_middleware(EmberMiddleware, start_sampler=False)

    @app.get("/fail/{n}")
    def fail(n: int) -> None:
        raise RuntimeError("handler failed")

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/fail/1")

    assert asyncio.run(main()).status_code == 500
    assert [(r.endpoint, r.status) for r in finished] == [("GET /fail/{n}", 500)]


def test_client_disconnect(finished: list[middleware.Request]) -> None:
    async def waits_for_disconnect(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    incoming = [{"type": "http.request", "body": b"x", "more_body": True},
                {"type": "http.disconnect"}]
    sent = asyncio.run(drive(EmberMiddleware(waits_for_disconnect, start_sampler=False),
                             http_scope("/d", "POST"), incoming))
    assert sent == []
    assert [(r.endpoint, r.status) for r in finished] == [("POST /d", 0)]

    class Gone(OSError):
        pass

    async def streams(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"1", "more_body": True})

    async def broken_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise Gone("client went away")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(Gone):
        asyncio.run(EmberMiddleware(streams, start_sampler=False)(
            http_scope("/d2"), receive, broken_send))
    assert [(r.endpoint, r.status) for r in finished[1:]] == [("GET /d2", 0)]


# -- ember failing must not matter --------------------------------------------------------
def fault_app() -> Starlette:
    async def item(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"], "q": request.url.query})

    def sync(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("sync " + request.path_params["n"], headers={"x-n": "1"})

    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/sync/{n}", sync)])
    app.add_middleware(EmberMiddleware, start_sampler=False)
    return app


def run_requests(app: Starlette, n: int) -> list[tuple[Any, ...]]:
    async def main() -> list[tuple[Any, ...]]:
        out = []
        for i in range(n):
            path = f"/sync/{i}" if i % 50 == 0 else f"/items/{i}"
            scope = dict(http_scope(path), query_string=f"a={i}".encode())
            sent = await drive(app, scope)
            out.append(tuple((m["type"], m.get("status"), m.get("headers"), m.get("body"))
                             for m in sent))
        return out
    return asyncio.run(main())


def test_requests_succeed_unchanged_while_ember_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 10_000
    expected = run_requests(fault_app(), n)
    assert expected[1][0][1] == 200 and b'"id":"1"' in expected[1][1][3]

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ember fault injected")

    for name in ("begin", "end", "relabel"):
        monkeypatch.setattr(middleware, name, explode)
    for name in ("enter_task", "exit_task", "enter_thread", "exit_thread", "endpoint"):
        monkeypatch.setattr(registry, name, explode)
    errors_before = middleware.errors
    got = run_requests(fault_app(), n)
    assert got == expected
    assert middleware.errors >= errors_before + n  # every request hit a fault, counted


def test_endpoint_labels_are_capped(finished: list[middleware.Request]) -> None:
    async def unrouted(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    app = EmberMiddleware(unrouted, start_sampler=False, max_endpoints=50)
    registry.activate()

    async def main() -> list[bytes]:
        bodies = []
        for i in range(10_000):
            sent = await drive(app, http_scope(f"/p/{i}/x{i}y"))
            bodies.append(sent[1]["body"])
        return bodies

    bodies = asyncio.run(main())
    assert bodies[1234] == b"/p/1234/x1234y"
    labels = {r.endpoint for r in finished} | {endpoint_here() or ""}
    assert len(finished) == 10_000
    assert len(labels) <= 50 + 2
    assert OTHER in labels and "GET /p/{id}/x0y" in labels
    assert len(registry.endpoints()) <= 50
