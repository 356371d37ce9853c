"""Flask integration: ``ember.flask.init_app(app)``.

::

    import ember.flask
    ember.flask.init_app(app, service="shop")

Wraps ``app.wsgi_app`` with :class:`ember.wsgi.EmberMiddleware` (``options``
are its keyword arguments: ``start_sampler``, ``label``, ``max_endpoints`` and
sampler settings) and labels each request, once Flask has routed it, with its
route template: ``/items/<int:item_id>`` becomes ``GET /items/{item_id}``.
Requests no route matches (404, 405) are labelled ``METHOD [unmatched]`` so
that scanners probing random paths cannot create labels. Before routing the
label is ``METHOD [unrouted]``.
"""

from __future__ import annotations

from typing import Any

import flask

from ember import middleware
from ember.attribution import UNMATCHED
from ember.wsgi import EmberMiddleware, route_template, set_route


def _label_route() -> None:
    try:
        request = flask.request._get_current_object()  # type: ignore[attr-defined]
        rule = request.url_rule
        route = UNMATCHED if rule is None else route_template(rule.rule)
        set_route(request.environ, route)
    except Exception:
        middleware._failed("reading the Flask route")


def init_app(app: flask.Flask, **options: Any) -> flask.Flask:
    """Profile ``app``'s requests per endpoint; returns ``app``."""
    wrapped = EmberMiddleware(app.wsgi_app, **options)
    wrapped.routed = True  # Flask routes every request: raw paths never label one
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    # first, so the application's own before_request hooks run under the route
    app.before_request_funcs.setdefault(None, []).insert(0, _label_route)
    return app
