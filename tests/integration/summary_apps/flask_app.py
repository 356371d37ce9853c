"""A Flask app served by gunicorn (2 workers) for test_window_summaries_servers.py."""

from __future__ import annotations

import time

import flask
import windows_file  # noqa: F401  (the sink)

import ember.flask

SLEEP = 0.003

app = flask.Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> str:
    time.sleep(SLEEP)
    return f"item {item_id}"


@app.get("/boom")
def boom() -> str:
    time.sleep(SLEEP)
    raise RuntimeError("boom")


@app.get("/unavailable")
def unavailable() -> str:
    time.sleep(SLEEP)
    flask.abort(503)


ember.flask.init_app(app, window=0.2, metrics=False)
