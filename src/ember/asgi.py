"""ASGI middleware (Starlette, FastAPI): attribute samples to the request's route.

Usage::

    from ember.asgi import EmberMiddleware
    app.add_middleware(EmberMiddleware)            # Starlette / FastAPI
    app = EmberMiddleware(app, rate=100)           # any other ASGI app

For every ``http`` request the middleware registers the request's asyncio task
(:func:`ember.middleware.begin`) under a provisional endpoint label -- the
``label(scope)`` callable if one was given, else the path (``scope["path"]``,
text the server decoded; else ``raw_path``'s bytes as UTF-8) with ids replaced
(:func:`ember.attribution.normalise_path`). As soon as Starlette's router picks
a route (it writes ``scope["route"]``) the request is relabelled with the
route template (``GET /items/{item_id}``); the same is checked again when the
response starts. Once the router picked a route for one request the app is
known to route: later requests are ``METHOD [unrouted]`` until routed, and one
still without a route when its response starts is ``METHOD [unmatched]`` if
that is a 404 (else its path's label), so that paths a scanner makes up never
become labels. The request ends exactly once: when the response body (and
trailers, if announced) is complete, or when the app returns or raises (status
500 for an exception, 0 for a client that went away).

Route hook. To see ``scope["route"]`` when the router writes it -- before the
endpoint runs, so its CPU carries the template and not the raw path -- the app
below the middleware receives a copy of the scope (a ``dict`` subclass) that
notices that key; every write to the copy is also made to the server's scope,
so middleware outside ember still sees what the router set.

Thread pool. Sync endpoints and sync dependencies run in Starlette's thread
pool (``anyio.to_thread.run_sync``). The middleware keeps the request in a
:class:`contextvars.ContextVar`, which anyio copies into the worker, and the
first :class:`EmberMiddleware` created replaces ``anyio.to_thread.run_sync``
(once, process-wide; :func:`install_threadpool_hook`) with a wrapper that, when
called inside a request, registers the worker thread for that request for the
duration of the call and adds the worker's CPU clock around the call to the
request's CPU (the sampler's per-task credit covers only the event loop's
thread). Outside a request the wrapper calls the original as is.

``websocket`` and ``lifespan`` scopes pass through untouched. Nothing that goes
wrong inside ember reaches the application: errors are counted in
:data:`ember.middleware.errors` and logged once.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from ember import autostart, middleware
from ember.attribution import UNMATCHED, UNROUTED, normalise_path, registry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

T = TypeVar("T")


class _State:
    """One request in flight, as the middleware, the scope hook and workers see it."""

    __slots__ = ("done", "method", "mounts", "owner", "request", "root_path", "route_label")

    def __init__(self, method: str, root_path: str, owner: EmberMiddleware) -> None:
        self.method = method
        self.owner = owner
        self.root_path = root_path
        self.mounts = ""  # the declared paths of the Mounts routed through so far
        self.request: middleware.Request | None = None
        self.route_label: str | None = None
        self.done = False

    def route_seen(self, scope: MutableMapping[str, Any], route: Any) -> None:
        """The router picked ``route``: a Mount (its declared path prefixes what
        follows, e.g. ``/users/{user_id}``) or the final route."""
        try:
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            if not isinstance(template, str):
                return
            mount = _mount_path(route)
            if mount is not None:
                self.mounts += mount
                template = self.mounts + "/{path}"
            elif self.mounts:
                template = self.mounts + template
            else:
                root = scope.get("root_path", "")
                if isinstance(root, str) and len(root) > len(self.root_path) \
                        and root.startswith(self.root_path):  # under a prefix ember did not see
                    template = normalise_path(root[len(self.root_path):]) + template
            self.owner.routed = True
            self.route_label = registry.endpoint(self.method, template)
            if not self.done:
                middleware.relabel(self.request, self.route_label)
        except Exception:
            middleware._failed("reading the route")

    def no_route(self, scope: Scope, status: int) -> None:
        """The response starts and the routing app picked no route."""
        if status == 404:
            self.route_label = registry.endpoint(self.method, UNMATCHED)
        else:
            self.route_label = registry.path_endpoint(self.method, request_path(scope))
        middleware.relabel(self.request, self.route_label)

    def endpoint(self) -> str | None:
        return self.request.endpoint if self.request is not None else None


@functools.cache
def _mount_class() -> type | None:
    """Starlette's ``Mount``, looked up once (None without Starlette)."""
    try:
        from starlette.routing import Mount
    except ImportError:
        return None
    return Mount


def _mount_path(route: Any) -> str | None:
    """The declared path of a Starlette ``Mount`` (``/users/{user_id}``), else None."""
    mount = _mount_class()
    if mount is not None and isinstance(route, mount):
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else None
    return None


def request_path(scope: Scope) -> str:
    """The request's path: ``scope["path"]`` (the server decoded the client's
    bytes as UTF-8), else ``raw_path`` decoded the same way (invalid sequences
    become U+FFFD)."""
    path = scope.get("path")
    if isinstance(path, str):
        return path
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        return urllib.parse.unquote_to_bytes(raw.split(b"?", 1)[0]).decode("utf-8", "replace")
    return "/"


_current: contextvars.ContextVar[_State | None] = contextvars.ContextVar(
    "ember_asgi_request", default=None)


class _Scope(dict[str, Any]):
    """The scope handed to the app: notices ``route``, mirrors writes to the original."""

    __slots__ = ("_ember_original", "_ember_state")

    def __init__(self, original: Scope, state: _State) -> None:
        super().__init__(original)
        self._ember_original = original
        self._ember_state = state

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._ember_mirror(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        items = dict(*args, **kwargs)
        super().update(items)
        for key, value in items.items():
            self._ember_mirror(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        try:
            self._ember_original.pop(key, None)
        except Exception:
            middleware._failed("mirroring the scope")

    def _ember_mirror(self, key: str, value: Any) -> None:
        try:
            self._ember_original[key] = value
        except Exception:
            middleware._failed("mirroring the scope")
        if key == "route":
            self._ember_state.route_seen(self, value)


class EmberMiddleware:
    """ASGI middleware attributing samples to route templates; see the module docstring.

    ``label`` maps a scope to the provisional route (default: the normalised
    path); a route template found by Starlette's router replaces it. When it is
    made it calls :func:`ember.autostart.ensure_started` with ``start_sampler``,
    ``max_endpoints`` (the process-wide cap on endpoint labels) and the other
    keyword settings (as in :class:`ember.Config`, plus ``metrics`` and ``registry``).
    """

    routed = False
    """Whether the app routes (its router picked a route for one request)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        start_sampler: bool = True,
        label: Callable[[Scope], str] | None = None,
        max_endpoints: int | None = None,
        **sampler_settings: Any,
    ) -> None:
        self.app = app
        self.label = label
        try:
            install_threadpool_hook()
        except Exception:
            middleware._failed("setting up the ASGI middleware")
        autostart.ensure_started(start_sampler, max_endpoints=max_endpoints, **sampler_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        state, inner = self._begin(scope)
        if state is None:
            await self.app(scope, receive, send)
            return
        token = _current.set(state)
        status = 0
        complete = False
        trailers = False
        disconnected = False

        async def receive_wrapper() -> Message:
            nonlocal disconnected
            message = await receive()
            if message.get("type") == "http.disconnect":
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, complete, trailers, disconnected
            try:
                kind = message.get("type")
                if kind == "http.response.start":
                    status = int(message.get("status", 0))
                    trailers = bool(message.get("trailers", False))
                    if state.route_label is None:
                        route = inner.get("route")
                        if route is not None:
                            state.route_seen(inner, route)
                        elif self.routed and self.label is None:
                            state.no_route(inner, status)
                elif kind == "http.response.body":
                    complete = not message.get("more_body", False) and not trailers
                elif kind == "http.response.trailers":
                    complete = not message.get("more_trailers", False)
            except Exception:
                middleware._failed("watching the response")
            try:
                await send(message)
            except BaseException:
                disconnected = True
                raise
            if complete:
                self._end(state, status)

        try:
            await self.app(inner, receive_wrapper, send_wrapper)
        except BaseException:
            self._end(state, 0 if disconnected else 500)
            raise
        finally:
            self._end(state, 0 if disconnected and not complete else status)
            _current.reset(token)

    def _begin(self, scope: Scope) -> tuple[_State | None, Scope]:
        try:
            method = str(scope.get("method", ""))
            state = _State(method, str(scope.get("root_path", "")), self)
            inner = _Scope(scope, state)
        except Exception:
            middleware._failed("registering a request")
            return None, scope
        try:
            if self.label is not None:
                endpoint = registry.endpoint(method, self.label(scope))
            elif self.routed:
                endpoint = registry.endpoint(method, UNROUTED)
            else:
                endpoint = registry.path_endpoint(method, request_path(scope))
            state.request = middleware.begin(method, endpoint, asyncio_task=True)
        except Exception:
            middleware._failed("registering a request")
        return state, inner

    @staticmethod
    def _end(state: _State, status: int) -> None:
        if state.done:
            return
        state.done = True
        try:
            middleware.end(state.request, status)
        except Exception:
            middleware._failed("finishing a request")


# -- the thread pool ----------------------------------------------------------------
_hook_lock = threading.Lock()


def _in_request(state: _State, func: Callable[..., T], *args: Any) -> T:
    """Run ``func`` in a worker thread, registered for the request ``state``; the
    worker's CPU clock around the call counts for the request."""
    entered = False
    start = 0
    try:
        endpoint = state.endpoint()
        if endpoint is not None and not state.done:
            registry.enter_thread(registry.labels(endpoint))
            entered = True
            start = time.thread_time_ns()
    except Exception:
        middleware._failed("registering a worker thread")
    try:
        return func(*args)
    finally:
        if entered:
            try:
                request = state.request
                if request is not None and not state.done:
                    request.worker_cpu_ns.append(time.thread_time_ns() - start)
                registry.exit_thread()
            except Exception:
                middleware._failed("unregistering a worker thread")


def install_threadpool_hook() -> bool:
    """Wrap ``anyio.to_thread.run_sync`` so workers carry the calling request.

    Idempotent; returns whether it installed the wrapper now. Starlette's
    ``run_in_threadpool`` (sync endpoints, dependencies, background tasks) and
    FastAPI look the function up on the module at every call, so they see it.
    """
    try:
        import anyio.to_thread
    except ImportError:
        return False
    with _hook_lock:
        original = anyio.to_thread.run_sync
        if getattr(original, "__ember_wrapped__", False):
            return False

        @functools.wraps(original)
        async def run_sync(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
            state = _current.get()
            if state is None or state.done:
                return await original(func, *args, **kwargs)
            return await original(functools.partial(_in_request, state, func), *args, **kwargs)

        run_sync.__ember_wrapped__ = True  # type: ignore[attr-defined]
        anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
        return True


__all__ = ["EmberMiddleware", "install_threadpool_hook"]
