"""What a frame is, whichever tool recorded it: Python or native code, ember's own
or the application's, and one identity for one function across sources.

The in-process sampler names a frame's file by the code's ``co_filename``: a
script started as ``python hot.py`` gives the relative ``hot.py`` in older
recordings. py-spy (``--full-filenames``) gives ``/srv/app/hot.py``. Qualified
names and first lines agree between the two, so :func:`unify_files` makes the
relative spelling the absolute one wherever exactly one absolute file of the
profiles ends with it; merging and diffing then see one function, not two.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from ember.profile import DEEP_FRAME_NAMES, Frame, Profile

_PYTHON_SUFFIXES = (".py", ".pyw")
# <string>, <stdin>, <frozen importlib._bootstrap>, <ipython-input-1-...>: Python
# code without a file of its own; these name no Python code.
_NOT_PYTHON_PSEUDO = frozenset({"<built-in>", "<native>", "<unknown>"})
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def is_python(frame: Frame) -> bool:
    """Whether ``frame`` runs Python bytecode (rather than C, Cython or unknown code).

    A ``.py`` file, or a pseudo-file such as ``<string>`` or ``<frozen ...>``.
    Frames without a file (names only, as ``perf`` or flamegraph.pl write them),
    native libraries and sources, Cython's ``.pyx`` and ember's synthetic
    ``[truncated]`` / ``[deep]`` frames are not.
    """
    file = frame.file
    if not file or frame.name in DEEP_FRAME_NAMES:
        return False
    if file.startswith("<") and file.endswith(">"):
        return file not in _NOT_PYTHON_PSEUDO
    return file.lower().endswith(_PYTHON_SUFFIXES)


@functools.cache
def _ember_files() -> frozenset[str]:
    """ember's own files, relative to its package directory (``gcstats.py``, ``cli/main.py``)."""
    root = os.path.dirname(os.path.abspath(__file__))
    found = set()
    for folder, _dirs, files in os.walk(root):
        for name in files:
            relative = os.path.relpath(os.path.join(folder, name), root)
            found.add(relative.replace(os.sep, "/"))
    return frozenset(found)


@functools.cache
def _is_ember_file(file: str) -> bool:
    file = file.replace("\\", "/")
    parts = file.split("/")
    # .../site-packages/ember/gcstats.py, /work/src/ember/cli/main.py, also
    # recorded on another machine: the path below an "ember" directory must be
    # one of the installed package's own files.
    for i in range(len(parts) - 1):
        if parts[i] == "ember" and "/".join(parts[i + 1:]) in _ember_files():
            return True
    return False


def is_ember(frame: Frame) -> bool:
    """Whether ``frame`` is ember's own code (its GC callback, middleware, sampler)."""
    return bool(frame.file) and _is_ember_file(frame.file)


def _normalised(file: str) -> str:
    return posixpath.normpath(file.replace("\\", "/"))


def _is_absolute(file: str) -> bool:
    return file.startswith("/") or _WINDOWS_ABSOLUTE.match(file) is not None


def _is_relative(file: str) -> bool:
    # Not "" (no file), "<string>", "[vdso]" or "?" (py-spy's unknown native file).
    return bool(file) and not _is_absolute(file) and file[0] not in "<[?"


def unify_files(profiles: Sequence[Profile]) -> list[Profile]:
    """``profiles`` with each relative file spelled as the absolute file that ends with it.

    ``sieve (hot.py:4)`` becomes ``sieve (/srv/app/hot.py:4)`` when
    ``/srv/app/hot.py`` is the one absolute file among all the profiles' frames
    that ends with ``/hot.py``; when several do, the one holding a function of
    the same name, if only one does. Anything else is left as it is (an
    unmatched relative name, paths of two different machines). Profiles that
    need no change are returned as they are.
    """
    frames = {frame for profile in profiles for frame in profile.frames}
    by_basename: dict[str, list[str]] = defaultdict(list)
    names_in: dict[str, set[str]] = defaultdict(set)
    for frame in frames:
        if _is_absolute(frame.file):
            names_in[frame.file].add(frame.name)
    for file in sorted(names_in):
        by_basename[posixpath.basename(_normalised(file))].append(file)
    mapping: dict[Frame, Frame] = {}
    for frame in frames:
        if not _is_relative(frame.file):
            continue
        relative = _normalised(frame.file)
        if relative.startswith("../"):
            continue
        found = [file for file in by_basename.get(posixpath.basename(relative), ())
                 if _normalised(file).endswith("/" + relative)]
        if len(found) > 1:
            found = [file for file in found if frame.name in names_in[file]]
        if len(found) == 1:
            mapping[frame] = frame._replace(file=found[0])
    if not mapping:
        return list(profiles)
    return [rename(profile, mapping) for profile in profiles]


def rename(profile: Profile, mapping: Mapping[Frame, Frame]) -> Profile:
    """A new profile whose frames are replaced as ``mapping`` says (others kept).

    Stacks that become equal are summed.
    """
    if all(mapping.get(frame, frame) == frame for frame in profile.frames):
        return profile
    out = Profile(dataclasses.replace(profile.meta))
    frame_ids = [out.frame_id(mapping.get(frame, frame)) for frame in profile.frames]
    stack_ids = [out.stack_id(tuple(frame_ids[f] for f in stack)) for stack in profile.stacks]
    for (sid, labels), values in profile.values.items():
        out.add_values(stack_ids[sid], labels, *values.astuple())
    return out
