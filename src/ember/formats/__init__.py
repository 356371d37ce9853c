"""Profile formats: each module reads into and writes from :class:`ember.Profile`.

No format converts directly into another; everything goes through ``Profile``.
"""

from __future__ import annotations

import importlib
import os
from typing import IO, Any, Protocol

from ember.errors import FormatError
from ember.formats import collapsed
from ember.profile import Profile


class Format(Protocol):
    """What every format module provides.

    ``sniff`` says from the first 4 KiB whether an input is in this format;
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


# name -> output extensions, in detection order. Modules are imported only when
# a format is used, or asked whether an input is theirs.
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


def detect(head: bytes, path: str) -> Format:
    """The format of an input, from its first bytes."""
    for name in EXTENSIONS:
        fmt = _module(name)
        if fmt.sniff(head):
            return fmt
    if not head:
        raise FormatError("empty file", path=path)
    raise FormatError("not a profile in any supported format", path=path)


def load(path: str | os.PathLike[str]) -> Profile:
    """Read a profile file of any supported format (detected from content)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as stream:
            fmt = detect(stream.read(4096), name)
            stream.seek(0)
            return fmt.read(stream, name)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), path=name) from None


def dump(profile: Profile, path: str | os.PathLike[str], format: str | None = None,
         **options: Any) -> None:
    """Write a profile; the format comes from ``format`` or the path's extension.

    ``options`` go to the format's writer (for SVG: ``title``, ``subtitle``,
    ``inverted``, ``value``).
    """
    name = os.fspath(path)
    fmt = by_name(format) if format else for_path(name)
    try:
        with open(name, "wb") as stream:
            fmt.write(profile, stream, **options)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), path=name) from None
