"""Which request each thread or asyncio task is serving, read by the sampler.

Middleware registers the running request; the sampler labels every sample of
that thread (or, on an event loop's thread, of the loop's current task) with
the request's endpoint. Sync code is keyed by thread ident; asyncio code by
task, because concurrent requests interleave on one loop thread. Writing is a
dict assignment and a version bump; the sampler re-reads threads only when the
version moved, so an idle registry costs it one integer comparison per cycle.

Endpoint labels are route templates (``GET /items/{item_id}``) where the
framework routes, and at most ``max_endpoints`` distinct ones exist: the rest
share ``other``. Where no framework routes, the label is the raw path,
normalised (:func:`normalise_path`), and at most ``max_new_paths`` such labels
are new in any minute, so that a scanner cannot take all the labels before the
real endpoints appear. Every label is printable and at most
:data:`MAX_ROUTE_CHARS` long after its method (:func:`clean_route`). Once any
middleware is active, samples outside a request carry ``background``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ember.config import Config
from ember.profile import Labels

BACKGROUND = "background"
_BACKGROUND_LABELS: Labels = (("endpoint", BACKGROUND),)
OTHER = "other"
OTHER_METHOD = "_OTHER"
"""The method of requests whose method is not a standard HTTP one (as
OpenTelemetry's ``http.request.method``): clients choose methods freely, and
labels must stay bounded."""
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                     "TRACE", "PATCH", "QUERY"))
UNMATCHED = "[unmatched]"
"""Route of requests that matched none of the framework's routes (``GET [unmatched]``)."""
UNROUTED = "[unrouted]"
"""Route of a request of a routing framework until the framework has routed it."""
MAX_ROUTE_CHARS = 128
"""Characters of a label after its method at most; longer ones end in ``…``."""
MAX_PATH_CHARS = 1024
"""Characters of a raw path that are normalised (the rest cannot reach a label)."""
NEW_PATHS_PERIOD = 60.0
"""Seconds over which at most ``max_new_paths`` new path labels are made."""
REPLACEMENT = "\ufffd"
"""What a character that is not printable becomes in a label."""


def http_method(method: str) -> str:
    """``method`` if it is a standard HTTP method (or empty), else ``_OTHER``."""
    return method if method in METHODS or not method else OTHER_METHOD


def clean_route(route: str) -> str:
    """``route`` fit for a label: each character that is not printable (controls
    such as CR and LF, format characters such as bidi overrides, separators
    other than the space, lone surrogates) becomes U+FFFD, and beyond
    :data:`MAX_ROUTE_CHARS` characters it is cut, ending in ``…``."""
    if not route.isprintable():
        route = "".join(ch if ch.isprintable() else REPLACEMENT for ch in route)
    if len(route) > MAX_ROUTE_CHARS:
        route = route[:MAX_ROUTE_CHARS - 1] + "…"
    return route


_ID_SEGMENT = re.compile(
    r"^(?:\d+"                                    # 12345
    r"|\d+(?:[.,:_-]\d+)+"                         # 2024-01-31, 1.5, 12:30
    r"|[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}"  # a uuid
    r"|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}"          # long hex with a digit
    r"|(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{16,})$")  # long token mixing digits


@functools.lru_cache(maxsize=4096)
def normalise_path(path: str) -> str:
    """A route-like template from a raw path: ids, uuids and long hex become ``{id}``.

    The fallback for frameworks whose route template ember cannot read.
    """
    parts = [("{id}" if part and _ID_SEGMENT.match(part) else part)
             for part in path.split("?", 1)[0].split("/")]
    return "/".join(parts) or "/"


class Attribution:
    """The registry of running requests (one per process: :data:`registry`)."""

    def __init__(self, max_endpoints: int = 200,
                 max_new_paths: int = Config.max_new_paths,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_endpoints = max_endpoints
        self.max_new_paths = max_new_paths
        """New labels made from raw paths per minute at most (:meth:`path_endpoint`)."""
        self.clock = clock
        """Seconds, monotonic: when a minute of new path labels is over."""
        self._new_paths = 0
        self._new_paths_since = -math.inf
        self.version = 0
        self.active = False
        self._lock = threading.Lock()
        self._endpoints: set[str] = set()
        self._labels: dict[str, Labels] = {}  # bounded like the endpoints
        self._threads: dict[int, Labels] = {}
        self._tasks: dict[asyncio.Task[Any], Labels] = {}
        self._task_cpu: dict[asyncio.Task[Any], int] = {}
        # Tasks a request task created (asyncio.gather, create_task, TaskGroup):
        # child -> (labels, the request's task). Weak: an abandoned task stays
        # collectable; a child leaves when it is done.
        self._children: weakref.WeakKeyDictionary[
            asyncio.Task[Any], tuple[Labels, asyncio.Task[Any]]] = weakref.WeakKeyDictionary()
        self._loops: dict[int, asyncio.AbstractEventLoop] = {}

    # -- labels -------------------------------------------------------------------
    def endpoint(self, method: str, route: str) -> str:
        """``METHOD route``, or ``other`` once ``max_endpoints`` labels exist.

        For routes the application declares (a framework's route templates, a
        ``label`` callable's text). A method that is not a standard HTTP one
        counts as ``_OTHER``; the route goes through :func:`clean_route`.
        """
        method = http_method(method)
        label = f"{method} {route}" if method else route
        if label in self._endpoints:
            return label
        return self._admit(method, route, from_path=False)

    def path_endpoint(self, method: str, path: str) -> str:
        """The label of a raw path no framework routed: ``METHOD`` and the path
        normalised (:func:`normalise_path`), as :meth:`endpoint` does; a label
        not seen before is made only while fewer than ``max_new_paths`` were
        made in the last minute (first come, first served), else ``other``."""
        method = http_method(method)
        route = normalise_path(path[:MAX_PATH_CHARS])
        label = f"{method} {route}" if method else route
        if label in self._endpoints:
            return label
        return self._admit(method, route, from_path=True)

    def _admit(self, method: str, route: str, *, from_path: bool) -> str:
        route = clean_route(route)
        label = f"{method} {route}" if method else route
        with self._lock:
            if label in self._endpoints:
                return label
            if len(self._endpoints) >= self.max_endpoints:
                return OTHER
            if from_path:
                now = self.clock()
                if now - self._new_paths_since >= NEW_PATHS_PERIOD:
                    self._new_paths_since, self._new_paths = now, 0
                if self._new_paths >= self.max_new_paths:
                    return OTHER
                self._new_paths += 1
            self._endpoints.add(label)
        return label

    def endpoints(self) -> set[str]:
        return set(self._endpoints)

    def labels(self, endpoint: str) -> Labels:
        """The request labels of ``endpoint``: one object per endpoint, so that a
        sampler can tell by identity that a thread still serves the same one."""
        labels = self._labels.get(endpoint)
        if labels is None:
            labels = self._labels[endpoint] = (("endpoint", endpoint),)
        return labels

    # -- requests -----------------------------------------------------------------
    def activate(self) -> None:
        """A middleware is in place: samples outside requests become ``background``."""
        if not self.active:
            self.active = True
            self.version += 1

    def enter_thread(self, labels: Labels, ident: int | None = None) -> None:
        """The current thread (or ``ident``) now serves a request with ``labels``."""
        self._threads[threading.get_ident() if ident is None else ident] = labels
        self.version += 1

    def exit_thread(self, ident: int | None = None) -> None:
        self._threads.pop(threading.get_ident() if ident is None else ident, None)
        self.version += 1

    def enter_task(self, labels: Labels, task: asyncio.Task[Any] | None = None) -> None:
        """The current asyncio task (or ``task``) now serves a request with ``labels``."""
        task = task if task is not None else asyncio.current_task()
        if task is None:
            self.enter_thread(labels)
            return
        self._tasks[task] = labels
        self._task_cpu.setdefault(task, 0)
        loop = task.get_loop()
        ident = threading.get_ident()
        if self._loops.get(ident) is not loop:  # a thread may run a new loop later
            self._loops[ident] = loop
            _adopt_children(loop, self)
        self.version += 1

    def exit_task(self, task: asyncio.Task[Any] | None = None) -> int:
        """The task's request is over; returns the CPU (ns) samplers credited to it."""
        task = task if task is not None else asyncio.current_task()
        if task is None:
            self.exit_thread()
            return 0
        self._tasks.pop(task, None)
        self.version += 1
        return self._task_cpu.pop(task, 0)

    def credit_task(self, task: asyncio.Task[Any], cpu_ns: int) -> None:
        """A sampler saw ``task`` running after its loop thread used ``cpu_ns``
        (a task the request created counts for the request)."""
        if task in self._task_cpu:
            self._task_cpu[task] += cpu_ns
        elif self._children:
            adopted = self._children.get(task)
            if adopted is not None and adopted[1] in self._task_cpu:
                self._task_cpu[adopted[1]] += cpu_ns

    def adopt(self, task: asyncio.Task[Any], parent: asyncio.Task[Any] | None) -> None:
        """``parent`` created ``task``: if ``parent`` serves a request, or is one
        of its tasks, ``task`` carries the request's labels until it is done."""
        if parent is None:
            return
        labels = self._tasks.get(parent)
        if labels is not None:
            self._children[task] = (labels, parent)
        elif self._children:
            adopted = self._children.get(parent)
            if adopted is None:
                return
            self._children[task] = adopted
        else:
            return
        task.add_done_callback(self._disown)

    def _disown(self, task: asyncio.Task[Any]) -> None:
        self._children.pop(task, None)

    def reset(self) -> None:
        """Forget every request, endpoint and loop (tests; a new process)."""
        with self._lock:
            self._endpoints.clear()
            self._labels.clear()
            self._threads.clear()
            self._tasks.clear()
            self._task_cpu.clear()
            self._children.clear()
            self._loops.clear()
            self._new_paths, self._new_paths_since = 0, -math.inf
            self.active = False
            self.version += 1

    # -- read by the sampler ------------------------------------------------------
    def loop_threads(self) -> dict[int, asyncio.AbstractEventLoop]:
        """Threads running an event loop that served requests: labelled per cycle."""
        return self._loops

    def labels_of(self, ident: int) -> Labels | None:
        """The request labels of a thread now: its own request, or its loop's
        current task's; ``background`` outside requests once active, else None."""
        loop = self._loops.get(ident)
        return self.labels_of_task(current_task(loop) if loop is not None else None, ident)

    def labels_of_task(self, task: asyncio.Task[Any] | None, ident: int) -> Labels | None:
        """:meth:`labels_of` for a thread whose loop runs ``task`` now (None:
        none, or not a loop thread). The same request gives the same object."""
        if task is not None:
            labels = self._tasks.get(task)
            if labels is not None:
                return labels
            if self._children:
                adopted = self._children.get(task)
                if adopted is not None:
                    return adopted[0]
        labels = self._threads.get(ident)
        if labels is not None:
            return labels
        return _BACKGROUND_LABELS if self.active else None


def _adopt_children(loop: asyncio.AbstractEventLoop, registry: Attribution) -> None:
    """Make the tasks that request tasks create on ``loop`` carry their request.

    Wraps the loop's task factory (the application's own, if it set one, is
    kept and called). A factory the application sets later replaces this one:
    tasks created then are no longer adopted, nothing else changes. Creating a
    task costs ~0.3 us more outside requests, ~1.4 us inside one (create_task
    and await of an empty coroutine: 4.45 us bare). Never raises.
    """
    try:
        previous = loop.get_task_factory()
        if getattr(previous, "__ember_adopts__", False):
            return

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            task: Any
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            try:  # noqa: SIM105 - no context manager on every task creation
                registry.adopt(task, asyncio.current_task(loop))
            except Exception:  # attribution is best effort; the task is the app's
                pass
            return task

        factory.__ember_adopts__ = True  # type: ignore[attr-defined]
        loop.set_task_factory(factory)
    except Exception:
        pass


def current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """The task running on ``loop`` (called from another thread).

    A dictionary lookup on CPython 3.11-3.13; 3.14 moved the running task onto
    the thread state. Kept behind this one function for that reason.
    """
    try:
        return asyncio.current_task(loop)
    except RuntimeError:
        return None


registry = Attribution()
"""The process-wide registry that middleware writes and samplers read."""
