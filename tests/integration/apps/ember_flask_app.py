"""A Flask app for tests/test_wsgi_servers.py (served by gunicorn)."""

from __future__ import annotations

import flask
from ember_burn import burn_alpha, burn_beta, burn_items, dump_profile
from prometheus_client import make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import ember.flask

app = flask.Flask(__name__)


@app.get("/alpha")
def alpha() -> str:
    burn_alpha()
    return "alpha"


@app.get("/beta")
def beta() -> str:
    burn_beta()
    return "beta"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> str:
    burn_items()
    return f"item {item_id}"


@app.get("/_profile")
def profile() -> str:
    return dump_profile()


ember.flask.init_app(app)
# /metrics as the README shows it for Flask: outside ember's middleware, beside the app
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})  # type: ignore[method-assign]
