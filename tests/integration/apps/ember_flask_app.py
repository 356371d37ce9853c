"""A Flask app for tests/test_wsgi_servers.py (served by gunicorn)."""

from __future__ import annotations

import flask
from ember_burn import burn_alpha, burn_beta, burn_items, dump_profile

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
