"""Profile formats: each module reads into and writes from :class:`ember.Profile`.

No format converts directly into another; everything goes through ``Profile``.
Every reader accepts what every writer writes: values stay within
``0..MAX_VALUE`` (see :mod:`ember.profile`) and readers refuse the rest.
"""

from __future__ import annotations

import importlib
import os
from typing import IO, Any, Protocol

from ember.errors import FormatError
from ember.formats import collapsed
from ember.formats._files import atomic_output, open_input
from ember.profile import Profile

__all__ = ["EXTENSIONS", "HEAD_SIZE", "Format", "atomic_output", "by_name", "detect", "dump",
           "for_path", "load"]

HEAD_SIZE = 4096
"""How many first bytes of an input the sniffers see."""


class Format(Protocol):
    """What every format module provides.

    ``sniff`` says from the first 4 KiB whether an input is in this format
    (collapsed text whose first line is longer is told by :func:`detect`);
    ``read`` raises :class:`FormatError` (naming ``path`` and, where it applies,
    the line) for anything malformed, and formats that cannot be read (SVG)
    raise it too; ``write`` takes format-specific keyword options and ignores
    the ones it does not know.
    """

    NAME: str
    EXTENSIONS: tuple[str, ...]

    def sniff(self, head: bytes) -> bool: ...
    def read(self, stream: IO[bytes], path: str) -> Profile: ...
    def write(self, profile: Profile, stream: IO[bytes], **options: Any) -> None: ...


# name -> output extensions, in the order an output path is matched. Modules are
# imported only when a format is used, or asked whether an input is theirs.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "collapsed": collapsed.EXTENSIONS,
    "pprof": (".pb.gz", ".pprof", ".pb"),
    "speedscope": (".json", ".speedscope.json"),
    "svg": (".svg",),
}


def _module(name: str) -> Format:
    module: Format = importlib.import_module(f"ember.formats.{name}")
    return module


def by_name(name: str) -> Format:
    if name not in EXTENSIONS:
        raise FormatError(f"unknown format {name!r}; known: {', '.join(sorted(EXTENSIONS))}")
    return _module(name)


def for_path(path: str) -> Format:
    """The format an output path asks for by its extension."""
    lower = os.fspath(path).lower()
    for name, extensions in EXTENSIONS.items():
        if lower.endswith(extensions):
            return _module(name)
    known = ", ".join(e for extensions in EXTENSIONS.values() for e in extensions)
    raise FormatError(f"cannot tell the output format from the extension (known: {known})",
                      path=str(path))


# Collapsed first: a complete first line that parses is the strongest evidence.
_DETECTION_ORDER = ("collapsed", "pprof", "speedscope", "svg")


def detect(head: bytes, path: str) -> Format:
    """The format of an input, from its first bytes (:data:`HEAD_SIZE` are enough).

    Signatures decide first: a collapsed first line, gzip or protobuf, JSON
    naming the speedscope schema, SVG. Then any other JSON object goes to the
    speedscope reader, which says what it lacks, and text whose first line
    does not end within ``head`` is collapsed (a deep stack makes a long
    line; the reader has no line-length limit and judges every line).
    """
    for name in _DETECTION_ORDER:
        fmt = _module(name)
        if fmt.sniff(head):
            return fmt
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return _module("speedscope")
    if collapsed.may_be(head):
        return _module("collapsed")
    if not head:
        raise FormatError("empty file", path=path)
    raise FormatError("not a profile in any supported format", path=path)


def load(path: str | os.PathLike[str]) -> Profile:
    """Read a profile file of any supported format (detected from content).

    Only regular files are read: a pipe, a directory or a device is a
    :class:`FormatError`, as is anything malformed.
    """
    name = os.fspath(path)
    try:
        with open_input(name) as stream:
            fmt = detect(stream.read(HEAD_SIZE), name)
            stream.seek(0)
            return fmt.read(stream, name)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), path=name) from None


def dump(profile: Profile, path: str | os.PathLike[str], format: str | None = None,
         **options: Any) -> None:
    """Write a profile; the format comes from ``format`` or the path's extension.

    ``options`` go to the format's writer (for SVG: ``title``, ``subtitle``,
    ``inverted``, ``value``). The file is replaced atomically: if writing
    fails, an existing file keeps its old content (see :func:`atomic_output`).
    """
    name = os.fspath(path)
    fmt = by_name(format) if format else for_path(name)
    try:
        with atomic_output(name) as stream:
            fmt.write(profile, stream, **options)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), path=name) from None
