"""Starting ember in a process the way a middleware wants it: :func:`ensure_started`.

Every framework adapter (``ember.wsgi``, ``ember.asgi``, ``ember.django``,
``ember.flask``) calls it, and nothing else: this is the one place that
starts the process-wide sampler, applies the label settings to the
attribution registry, and knows which window sinks exist (the Prometheus
metrics, when prometheus-client is installed, and the store ``EMBER_STORE``
names). A pre-forking
server calls it again in each worker; it is idempotent, and a sampler and
sinks started before a fork restart in the child by themselves.

Nothing that fails in here reaches the application: failures are counted in
:data:`ember.middleware.errors` and logged once.
"""

from __future__ import annotations

import os
from typing import Any

from ember import api, middleware
from ember.attribution import registry as requests
from ember.config import Config
from ember.sampler import Sampler


def ensure_started(start: bool = True, *, metrics: bool = True, registry: Any = None,
                   max_endpoints: int | None = None, **settings: Any) -> Sampler | None:
    """Make ember run in this process as a middleware needs it; returns the
    process-wide sampler (``None``: not running).

    - ``start``: start the process-wide sampler if it is not running, with
      ``settings`` (as in :class:`ember.Config`, ``EMBER_*`` variables beneath);
    - the label settings (``max_new_paths``: the running sampler's, unless
      ``settings`` are given; ``max_endpoints`` when given) go to the
      attribution registry, which becomes active (samples outside requests are
      ``background``);
    - ``metrics``: ember's Prometheus metrics (when prometheus-client is
      installed) in ``registry``, by default prometheus-client's global one, so
      that an application's existing ``/metrics`` shows them; they are fed from
      every window the process-wide sampler seals.
    """
    requests.activate()
    sampler = None
    try:
        if max_endpoints is not None:
            requests.max_endpoints = int(max_endpoints)
        sampler = api.current()
        if start and sampler is None:
            sampler = api.start(**settings)
        config = sampler.config if sampler is not None and not settings \
            else Config.from_env(**settings)
        requests.max_new_paths = config.max_new_paths
    except Exception:
        middleware._failed("starting the sampler")
    if metrics:
        _install_metrics(registry)
    _install_store()
    return sampler


_store_sink: Any = None
"""The process-wide :class:`ember.store.sink.StoreSink`, once ``EMBER_STORE`` named a file."""


def _install_store() -> None:
    """With ``EMBER_STORE=/path/ember.db``, every sealed window goes to that file
    too, from a thread of ember's own (opened there, at the first window)."""
    global _store_sink
    if _store_sink is not None:
        return
    spec = os.environ.get("EMBER_STORE", "").strip()
    if not spec or spec == "memory":
        return
    try:
        from ember.store import SUFFIXES, open_store
        from ember.store.sink import StoreSink

        if not spec.endswith(SUFFIXES):
            open_store(spec)  # raises the ConfigError that says what is expected
        _store_sink = StoreSink(opener=open_store)
        api.add_sink(_store_sink)
    except Exception:
        middleware._failed(f"opening the store EMBER_STORE={spec!r}")


def _install_metrics(registry: Any) -> None:
    try:
        from ember import metrics as prometheus  # optional: prometheus-client
    except ImportError:
        return
    try:
        prometheus.install(registry)
    except Exception:
        middleware._failed("installing the Prometheus metrics")
