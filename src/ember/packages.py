"""Which kind of code a frame belongs to: the application, the standard
library, a third-party package, or native/unknown code.

Used to colour flamegraphs and to keep ``ember advise`` to the user's own code.
"""

from __future__ import annotations

import functools
import os
import re
import sysconfig

from ember.profile import Frame

APP, STDLIB, THIRD_PARTY, NATIVE = "app", "stdlib", "third-party", "native"
KINDS = (APP, STDLIB, THIRD_PARTY, NATIVE)

_NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib", ".c", ".h", ".cc", ".cpp")
_VERSIONED_LIBRARY = re.compile(r"\.so(?:\.\d+)+$")  # libc.so.6, libcrypto.so.3
# Any interpreter's standard library, also one recorded on another machine.
_PY_LIB = re.compile(r"(?:^|/)lib(?:64)?/python\d+(?:\.\d+)*t?/")


@functools.cache
def _stdlib_roots() -> tuple[str, ...]:
    roots = set()
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            for variant in (path, os.path.realpath(path)):
                roots.add(variant.replace("\\", "/").rstrip("/") + "/")
    return tuple(sorted(roots))


@functools.cache
def classify_file(file: str) -> str:
    """The kind of code in ``file`` (a frame's file name as recorded)."""
    file = file.replace("\\", "/")
    if (not file or file.startswith(("<", "[")) or file == "?"
            or file.lower().endswith(_NATIVE_SUFFIXES) or _VERSIONED_LIBRARY.search(file)):
        # <built-in>, <frozen ...>, <string>, [vdso], native libraries and sources
        return NATIVE
    if "/site-packages/" in file or "/dist-packages/" in file:
        return THIRD_PARTY
    if file.startswith(_stdlib_roots()) or _PY_LIB.search(file):
        return STDLIB
    return APP


def classify(frame: Frame) -> str:
    """The kind of code a frame runs."""
    return classify_file(frame.file)
