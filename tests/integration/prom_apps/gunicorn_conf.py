"""gunicorn settings for the Prometheus acceptance test: 2 workers, multiprocess mode.

PROMETHEUS_MULTIPROC_DIR and the bind address come from the environment.
"""

import os

from prometheus_client import multiprocess

# ember is deliberately not imported here: the workers import it after the
# fork, the case where the sampler itself must repair CPython 3.11's stale
# native id of the worker's main thread (Sampler.start).

bind = os.environ["PROM_APP_BIND"]
workers = 2
worker_class = "sync"
timeout = 30
graceful_timeout = 2
loglevel = "warning"


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    multiprocess.mark_process_dead(worker.pid)
