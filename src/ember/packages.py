"""Which kind of code a frame belongs to: the application, the standard
library, a third-party package, or native/unknown code.

Used to colour flamegraphs and to keep ``ember advise`` to the user's own code.
"""

from __future__ import annotations

import functools
import os
import sysconfig

from ember.profile import Frame

APP, STDLIB, THIRD_PARTY, NATIVE = "app", "stdlib", "third-party", "native"
KINDS = (APP, STDLIB, THIRD_PARTY, NATIVE)

_SITE_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}",
                 "/site-packages/", "/dist-packages/")


@functools.cache
def _stdlib_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


@functools.cache
def classify_file(file: str) -> str:
    """The kind of code in ``file`` (a frame's file name as recorded)."""
    if not file or file.startswith("<") or file.endswith((".so", ".pyd", ".dll")):
        return NATIVE  # <built-in>, <frozen ...>, <string>, native frames
    if any(marker in file for marker in _SITE_MARKERS):
        return THIRD_PARTY
    real = os.path.realpath(file) if os.path.isabs(file) else file
    if real.startswith(_stdlib_roots()) or file.startswith(_stdlib_roots()):
        return STDLIB
    if "/lib/python3" in file and "/site-packages/" not in file:
        return STDLIB  # another interpreter's standard library (recorded elsewhere)
    return APP


def classify(frame: Frame) -> str:
    """The kind of code a frame runs."""
    return classify_file(frame.file)
