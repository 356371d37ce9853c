"""WSGI middleware: attribute every request's samples to its endpoint.

::

    from ember.wsgi import EmberMiddleware
    application = EmberMiddleware(application, service="shop")

Each request is labelled first with a provisional endpoint: ``label(environ)``
when given, else ``METHOD`` plus the path (:func:`request_path`: the bytes the
client sent, as UTF-8) normalised by :func:`ember.attribution.normalise_path`
(ids, uuids and long hex become ``{id}``). A framework integration that knows
the route template after routing calls :func:`set_route` (or just sets
``environ["ember.route"]``, which is read when the response starts); the rest
of the request then carries ``METHOD /route/{template}``. Once a route was set
for one request the application is known to route: later requests are
``METHOD [unrouted]`` until routed, and one that got no route by the time its
response starts is ``METHOD [unmatched]`` if the response is a 404 (else its
path's label), so that paths a scanner makes up never become labels. All
labels go through the registry's caps: beyond ``max_endpoints`` distinct ones,
and beyond ``max_new_paths`` new path labels a minute, requests share ``other``.

The request ends (once) when the server closes the response iterable, so
streaming bodies are measured whole. ``wsgi.file_wrapper`` responses are
passed through unwrapped (their ``close`` is hooked) so servers keep their
``sendfile`` fast path. Exceptions of the application propagate unchanged; a
failure inside ember is counted in :data:`ember.middleware.errors`, logged
once, and the request goes on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ember import _process, autostart, middleware
from ember.attribution import UNMATCHED as UNMATCHED  # re-exported: its home before
from ember.attribution import UNROUTED, registry

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

ROUTE_KEY = "ember.route"
"""Environ key a framework integration sets to the request's route template."""
_CALL_KEY = "ember.call"


def request_path(environ: Environ) -> str:
    """``PATH_INFO`` as the client meant it: a PEP 3333 server hands the bytes
    over decoded as latin-1; they are decoded again as UTF-8 here (invalid
    sequences become U+FFFD), as a framework does."""
    path = environ.get("PATH_INFO") or "/"
    if not isinstance(path, str):
        return "/"
    try:
        return path.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # not latin-1: a server that decoded it already
        return path


class _Call:
    """One request passing through the middleware."""

    # No reference back to the environ: the environ holds the call (set_route
    # finds it there), and a cycle would leave every request's environ, and all
    # it reaches, to the garbage collector.
    __slots__ = ("method", "open", "owner", "request", "route", "status")

    def __init__(self, method: str, owner: EmberMiddleware) -> None:
        self.method = method
        self.owner = owner
        self.request: middleware.Request | None = None
        self.route: str | None = None
        self.status = 0
        self.open = [True]  # finish() pops it: atomic, so exactly one caller ends the request

    def set_route(self, route: str) -> None:
        """Relabel the request with ``METHOD route`` (capped) if the route is new."""
        if route == self.route:
            return
        self.route = route
        self.owner.routed = True
        try:
            if self.request is not None:
                middleware.relabel(self.request, registry.endpoint(self.method, route))
        except Exception:
            middleware._failed("labelling a request")

    def no_route(self, environ: Environ) -> None:
        """The response starts and the routing application set no route."""
        if self.status == 404:
            self.set_route(UNMATCHED)
        elif self.request is not None:
            middleware.relabel(self.request,
                               registry.path_endpoint(self.method, request_path(environ)))

    def finish(self, status: int | None = None) -> None:
        """End the request exactly once."""
        try:
            self.open.pop()
        except IndexError:
            return
        try:
            middleware.end(self.request, self.status if status is None else status)
        except Exception:
            middleware._failed("finishing a request")


def set_route(environ: Environ, route: str) -> None:
    """The framework routed the request: label the rest of it with ``route``.

    ``route`` is a template such as ``/items/{item_id}`` (see
    :func:`route_template`). Never raises.
    """
    try:
        environ[ROUTE_KEY] = route
        call = environ.get(_CALL_KEY)
        if isinstance(call, _Call):
            call.set_route(route)
    except Exception:
        middleware._failed("labelling a request")


@functools.lru_cache(maxsize=1024)  # an application has few routes; read once per request
def route_template(route: str) -> str:
    """A framework route as an ember template: ``items/<int:item_id>`` -> ``/items/{item_id}``.

    Handles Flask/Werkzeug and Django ``path()`` converters (``<name>``,
    ``<conv:name>``, ``<any(a,b):name>``) and Django ``re_path()`` regexes
    (``^items/(?P<pk>[0-9]+)/$`` -> ``/items/{pk}/``; unnamed groups become ``{}``).
    """
    route = route.removeprefix("^")
    for suffix in ("\\Z", "$"):
        route = route.removesuffix(suffix)
    out: list[str] = []
    i, n = 0, len(route)
    while i < n:
        ch = route[i]
        if ch == "<":
            close = route.find(">", i)
            if close < 0:
                out.append(route[i:])
                break
            name = route[i + 1:close].rsplit(":", 1)[-1].strip()
            out.append("{" + name + "}")
            i = close + 1
        elif ch == "(" and (i == 0 or route[i - 1] != "\\"):
            # a regex group: skip to its matching parenthesis
            depth, j = 0, i
            while j < n:
                if route[j] == "\\":
                    j += 2
                    continue
                if route[j] == "(":
                    depth += 1
                elif route[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            group = route[i:j + 1]
            if group.startswith("(?P<"):
                out.append("{" + group[4:group.find(">")] + "}")
            else:
                out.append("{}")
            i = j + 1
        elif ch == "\\" and i + 1 < n:
            out.append(route[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    text = "".join(out)
    return text if text.startswith("/") else "/" + text


class _Response:
    """The application's iterable, ending the request when it is closed."""

    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: Iterable[bytes], call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._call.finish()


class EmberMiddleware:
    """Wrap a WSGI application; see the module docstring.

    On the first request of each process (a pre-forking server's every worker)
    it calls :func:`ember.autostart.ensure_started` with ``start_sampler``,
    ``max_endpoints`` (the registry's cap on distinct labels) and
    ``sampler_settings`` (as in :class:`ember.Config`, plus ``metrics`` and
    ``registry``). ``label(environ)``: the provisional endpoint label of a
    request (capped like every label).
    """

    routed = False
    """Whether the application routes (a route was set for one of its requests)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        start_sampler: bool = True,
        label: Callable[[Environ], str] | None = None,
        max_endpoints: int | None = None,
        **sampler_settings: Any,
    ) -> None:
        self.app = app
        self.label = label
        self.start_sampler = start_sampler
        self.max_endpoints = max_endpoints
        self.sampler_settings = sampler_settings
        self._pid = 0

    def _ensure_sampler(self) -> None:
        if _process.pid() != self._pid:  # kept current at fork: no system call per request
            self._pid = _process.pid()
            autostart.ensure_started(self.start_sampler, max_endpoints=self.max_endpoints,
                                     **self.sampler_settings)

    def _begin(self, environ: Environ) -> _Call | None:
        try:
            self._ensure_sampler()
            method = str(environ.get("REQUEST_METHOD") or "GET")
            call = _Call(method, self)
            if self.label is not None:
                endpoint = registry.endpoint("", self.label(environ))
            elif self.routed:
                endpoint = registry.endpoint(method, UNROUTED)
            else:
                endpoint = registry.path_endpoint(method, request_path(environ))
            call.request = middleware.begin(method, endpoint)
            environ[_CALL_KEY] = call
            return call
        except Exception:
            middleware._failed("registering a request")
            return None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        call = self._begin(environ)
        if call is None:
            return self.app(environ, start_response)

        def ember_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            try:
                call.status = int(status[:3])
                route = environ.get(ROUTE_KEY)
                if isinstance(route, str):
                    call.set_route(route)
                elif call.route is None and self.routed and self.label is None:
                    call.no_route(environ)
            except Exception:
                middleware._failed("labelling a request")
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, ember_start_response)
        except BaseException:
            call.finish(500)
            raise
        return self._wrap(result, environ, call)

    def _wrap(self, result: Iterable[bytes], environ: Environ, call: _Call) -> Iterable[bytes]:
        try:
            file_wrapper = environ.get("wsgi.file_wrapper")
            if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
                inner_close = getattr(result, "close", None)
                closed = False

                def close() -> None:
                    nonlocal closed
                    if closed:
                        return
                    closed = True
                    try:
                        if inner_close is not None:
                            inner_close()
                    finally:
                        call.finish()

                try:
                    result.close = close  # type: ignore[attr-defined]
                    return result
                except (AttributeError, TypeError):
                    pass  # no instance attributes: wrap it like any iterable
        except Exception:
            middleware._failed("wrapping a response")
        return _Response(result, call)
