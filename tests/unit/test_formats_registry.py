"""The format registry: its static table agrees with the format modules; loading refuses
what is not a regular file and detects formats from content; dumping is atomic."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ember
from ember import FormatError, Frame, Profile, formats
from ember.formats import speedscope
from profiles import awkward_profile, render, sample_profile
from support import deadline


@pytest.mark.parametrize("name", sorted(formats.EXTENSIONS))
def test_table_matches_module(name: str) -> None:
    module = importlib.import_module(f"ember.formats.{name}")
    assert name == module.NAME
    assert formats.EXTENSIONS[name] == module.EXTENSIONS
    assert formats.by_name(name) is module
    for extension in module.EXTENSIONS:
        assert formats.for_path("out" + extension.upper()) is module


def test_unknown_names_and_extensions() -> None:
    with pytest.raises(FormatError, match="unknown format"):
        formats.by_name("bmp")
    with pytest.raises(FormatError, match="extension"):
        formats.for_path("out.bmp")


# -- atomic writes ---------------------------------------------------------------------


def big_profile() -> Profile:
    p = Profile()
    for i in range(20_000):
        p.add([Frame("main", "/srv/app/main.py", 1), Frame(f"handler_{i}", "/srv/app/v.py", i)],
              samples=i + 1)
    return p


def test_a_writer_that_refuses_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    ember.dump(sample_profile(), path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="value must be"):
        ember.dump(awkward_profile(), path, value="bytes")  # the speedscope writer refuses
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["profile.json"]  # no temporary file left behind


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored): a real full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("name", ["p.txt", "p.pb.gz", "p.json", "p.svg"])
def test_a_write_failing_midway_leaves_the_old_file_untouched(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    ember.dump(sample_profile(), path)
    before = path.read_bytes()
    with file_size_limit(64 * 1024), pytest.raises(FormatError) as info:
        ember.dump(big_profile(), path)
    assert str(info.value).startswith(str(path)) and "large" in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [name]


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old_mask = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.txt"
        ember.dump(sample_profile(), fresh)
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0666 less the umask
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o604)
        ember.dump(sample_profile(), kept)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604  # an existing file keeps its mode
    finally:
        os.umask(old_mask)


def test_a_symlink_target_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    ember.dump(sample_profile(), link)
    assert link.is_symlink()
    assert ember.load(real) == ember.load(link)
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]


def test_a_device_target_is_written_in_place() -> None:
    ember.dump(sample_profile(), os.devnull, format="collapsed")  # nothing to replace there


# -- inputs that are not regular files ---------------------------------------------------


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.txt"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(FormatError, match=r"named pipe \(FIFO\), not a regular"):
        ember.load(fifo)


def test_a_fifo_with_a_writer_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "profile.txt"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"main;work 1\n" * 10_000))
    writer.start()
    try:
        with deadline(10), pytest.raises(FormatError, match="not a regular file"):
            ember.load(fifo)
    finally:
        with open(fifo, "rb") as drain:  # let the writer finish
            drain.read()
        writer.join()


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "character device"),
                                             (".", "directory")])
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    with deadline(10), pytest.raises(FormatError) as info:
        ember.load(path)
    assert f"{kind}, not a regular file" in str(info.value)
    assert str(info.value).startswith(path)


# -- detection ------------------------------------------------------------------------


def test_a_first_line_longer_than_the_sniffed_head_is_read(tmp_path: Path) -> None:
    # ember's own output for a 300-deep recursion: one line of ~20 KB
    p = Profile()
    frame = Frame("walk_the_tree_recursively", "/srv/application/src/service/tree.py", 120)
    p.add([Frame("<module>", "/srv/application/main.py", 1)] + [frame] * 300, samples=7)
    p.add([Frame("<module>", "/srv/application/main.py", 1)] + [frame] * 301, samples=1)
    path = tmp_path / "deep.txt"
    ember.dump(p, path)
    assert len(path.read_bytes().split(b"\n")[0]) > formats.HEAD_SIZE
    assert ember.load(path).canonical() == p.canonical()


def test_a_long_first_line_of_another_kind_is_judged_by_the_collapsed_reader(
        tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("word " * 2000 + "\n")
    with pytest.raises(FormatError, match=":1: count 'word'"):
        ember.load(path)


def test_speedscope_json_with_its_schema_late_in_the_file_is_read(tmp_path: Path) -> None:
    doc = speedscope.document(awkward_profile())
    late = {"shared": doc.pop("shared"), "padding": "x" * 5000, **doc}
    path = tmp_path / "late.json"
    path.write_text(json.dumps(late))
    assert ember.load(path) == awkward_profile()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"padding": "x" * 5000}))
    with pytest.raises(FormatError, match="not a speedscope file"):
        ember.load(other)


def test_an_svg_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "flame.svg"
    path.write_bytes(render(sample_profile()))
    with pytest.raises(FormatError, match="cannot be read back"):
        ember.load(path)
