"""How profile files are opened: inputs must be regular files, outputs are replaced
atomically.

An input that is not a regular file (a named pipe, a directory, a device) is
refused with :class:`FormatError` instead of blocking or reading forever;
it is opened with ``O_NONBLOCK`` so that even a FIFO with no writer cannot
hang the check.

An output is written to a temporary file in the target's directory, flushed
to disk and renamed over the target, so a failed write leaves the old file as
it was and never a partial one. The new file gets the target's permissions
if it existed, else those ``open()`` would give (0666 less the umask). A
target that exists but is not a regular file (``/dev/null``, a terminal, a
pipe) is written in place: there is nothing to replace.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

from ember.errors import FormatError

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def open_input(path: str) -> IO[bytes]:
    """``path`` opened for reading, if it is a regular file; else FormatError.

    OSError from the system (no such file, permission) is the caller's to report.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise FormatError(f"{kind}, not a regular file: give ember a profile file",
                              path=path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _umask() -> int:
    try:  # Linux says it without changing it
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A stream whose content replaces ``path`` when the block ends without error.

    On any error the temporary file is removed and ``path`` is left untouched.
    """
    target = os.fspath(path)
    if os.path.islink(target):
        target = os.path.realpath(target)  # replace what the link points at, not the link
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        with open(target, "wb") as stream:
            yield stream
        return
    mode = stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask()
    directory = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)[:64]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable; not every system can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
