"""A store that cannot be written (a read-only directory, a full disk) costs
neither the profiles nor the sampler: StoreSink warns once and keeps every
window in memory. Each case runs in a child process: the read-only directory
is a read-only tmpfs in a mount namespace of its own (root ignores
permissions), the full disk a file-size limit (RLIMIT_FSIZE)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
CHILD = str(HERE / "store_fallback_child.py")


def run(args: list[str]) -> dict[str, Any]:
    root = HERE.parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), str(root / "tests")]))
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def read_only_directory(directory: Path) -> list[str]:
    """The command prefix that runs a program with ``directory`` read-only."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("root, and no mount namespace to make a read-only directory in")
    return ["unshare", "-rm", "sh", "-c",
            'mount -t tmpfs -o ro,size=64k tmpfs "$0" && shift && exec "$@"', str(directory), "--"]


def test_a_read_only_directory_falls_back_to_memory_with_one_warning(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    prefix = read_only_directory(directory)
    got = run([*prefix, sys.executable, CHILD, str(directory / "ember.db"), "open"])
    directory.chmod(0o755)
    assert len(got["warnings"]) == 1, got
    assert "in memory" in got["warnings"][0] and "cannot open" in got["warnings"][0]
    assert got["store"] == "MemoryStore" and got["in_memory"] == 40
    assert got["handled"] == 40 and got["errors"] == 0


def test_a_full_disk_falls_back_to_memory_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "ember.db"
    got = run([sys.executable, CHILD, str(path), "full"])
    assert len(got["warnings"]) == 1, got
    assert "full" in got["failure"] or "disk I/O" in got["failure"], got["failure"]
    assert got["store"] == "MemoryStore" and got["handled"] == 40 and got["errors"] == 0
    with sqlite3.connect(path) as conn:  # what reached the file is intact
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        in_file = conn.execute("SELECT count(*) FROM windows").fetchone()[0]
    assert in_file >= 5
    assert in_file + got["in_memory"] == 40  # every window somewhere, none twice
