"""Django integration: add ``"ember.django.EmberMiddleware"`` to ``MIDDLEWARE``.

Put it first, so the whole request (the other middleware included) is
measured. The sampler starts when Django loads its middleware (in each worker
process), with the settings of an optional ``EMBER`` dict in the Django
settings: ``{"start_sampler": True, "max_endpoints": 200, "rate": 100, ...}``.

A request is labelled ``METHOD [unrouted]`` until URL resolution, then (in
``process_view``) with its route template: ``items/<int:item_id>`` becomes
``GET /items/{item_id}``, a ``re_path`` regex ``^items/(?P<pk>\\d+)/$`` becomes
``GET /items/{pk}/``. A request that reached no view (a middleware answered
it) is labelled with the route its path resolves to, and one whose path
resolves to none (a 404 of the resolver) ``METHOD [unmatched]``, as in the
Flask integration: the paths scanners make up never become labels. The
request ends when Django's WSGI handler closes the response, so streaming
responses are measured whole.

Synchronous (WSGI) only. Failures inside ember never affect the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember import autostart, middleware
from ember.attribution import UNMATCHED, UNROUTED, registry
from ember.wsgi import route_template

_ATTR = "_ember_request"


def _end(ember_request: middleware.Request, status: int) -> None:
    try:
        middleware.end(ember_request, status)
    except Exception:
        middleware._failed("finishing a request")


class EmberMiddleware:
    """New-style Django middleware (``__init__(get_response)``, ``__call__(request)``)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        try:
            from django.conf import settings  # type: ignore[import-untyped,unused-ignore]

            options = dict(getattr(settings, "EMBER", None) or {})
            start = bool(options.pop("start_sampler", True))
            autostart.ensure_started(start, **options)
        except Exception:
            middleware._failed("starting the sampler")

    def _begin(self, request: Any) -> middleware.Request | None:
        try:
            method = str(request.method or "GET")
            ember_request = middleware.begin(method, registry.endpoint(method, UNROUTED))
            setattr(request, _ATTR, ember_request)
            return ember_request
        except Exception:
            middleware._failed("registering a request")
            return None

    def __call__(self, request: Any) -> Any:
        ember_request = self._begin(request)
        if ember_request is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException:
            _end(ember_request, 500)
            raise
        if getattr(request, "resolver_match", None) is None:  # no view ran
            _label_unrouted(request, response, ember_request)
        self._end_on_close(response, ember_request)
        return response

    def _end_on_close(self, response: Any, ember_request: middleware.Request) -> None:
        try:
            status = int(getattr(response, "status_code", 0) or 0)
        except Exception:
            status = 0
        try:
            closers = getattr(response, "_resource_closers", None)
        except Exception:
            closers = None
        if isinstance(closers, list):
            done = False

            def finish() -> None:
                nonlocal done
                if not done:
                    done = True
                    _end(ember_request, status)

            closers.append(finish)
        else:
            _end(ember_request, status)

    def process_view(self, request: Any, view_func: Any, view_args: Any,
                     view_kwargs: Any) -> None:
        """URL resolution is done: label the rest of the request with its route."""
        try:
            ember_request = getattr(request, _ATTR, None)
            if ember_request is not None:
                _label_match(ember_request, request.resolver_match)
        except Exception:
            middleware._failed("reading the Django route")
        return None


def _label_match(ember_request: middleware.Request, match: Any) -> None:
    """Label the rest of the request with the route of ``match`` (a ResolverMatch)."""
    route = getattr(match, "route", None)
    if isinstance(route, str):
        middleware.relabel(ember_request,
                           registry.endpoint(ember_request.method, route_template(route)))


def _label_unrouted(request: Any, response: Any, ember_request: middleware.Request) -> None:
    """The response is ready and no view ran: ``[unmatched]`` for a 404 (the
    resolver found no route), else the route the path resolves to (a
    middleware answered: a redirect, a cached page), else ``[unmatched]``."""
    try:
        unmatched = registry.endpoint(ember_request.method, UNMATCHED)
        if getattr(response, "status_code", 0) == 404:
            middleware.relabel(ember_request, unmatched)
            return
        from django.urls import Resolver404, resolve  # type: ignore[import-untyped,unused-ignore]

        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            middleware.relabel(ember_request, unmatched)
            return
        _label_match(ember_request, match)
    except Exception:
        middleware._failed("reading the Django route")
