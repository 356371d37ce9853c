"""Several real worker processes share one store file: every window present,
the merged answer the exact sum of the per-worker answers; and a writer
SIGKILLed mid-write, again and again, never damages the file nor the other
writers' windows, and loses at most the window it was writing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import store_windows as sw
from ember.profile import merge
from ember.store.sqlite import SqliteStore
from ember.summary import merge as merge_summaries

T0 = 1_700_000_000.0
HERE = Path(__file__).parent
WRITER = str(HERE / "store_writer.py")


def env() -> dict[str, str]:
    out = dict(os.environ)
    root = HERE.parent.parent
    out["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root / "tests"),
                                         out.get("PYTHONPATH", "")])
    return out


def writer(path: Path, pid: int, count: int, rows: int = 150, first: int = 0
           ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WRITER, str(path), str(pid), str(count), str(rows),
                             str(first)], stdout=subprocess.PIPE, text=True, env=env())


def windows_of(pid: int, count: int, rows: int = 150, first: int = 0) -> list[sw.Window]:
    return [sw.window(T0 + 10 * i, pid=pid, rows=rows) for i in range(first, first + count)]


def open_store(path: Path) -> SqliteStore:
    return SqliteStore(path, clock=lambda: T0 + 600)


def test_four_writers_at_once_lose_nothing_and_sum_exactly(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    pids, count = (2001, 2002, 2003, 2004), 40
    procs = [writer(path, pid, count) for pid in pids]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.count("wrote") == count
    store = open_store(path)
    try:
        assert store.integrity() == "ok"
        assert {(w.pid, w.windows) for w in store.workers()} == {(pid, count) for pid in pids}
        parts = [store.query(pid=pid) for pid in pids]
        for pid, part in zip(pids, parts, strict=True):
            sw.same(part, sw.expected(windows_of(pid, count)))
        whole = store.query()
        assert whole.windows == len(pids) * count
        assert whole.profile.canonical() == merge(p.profile for p in parts).canonical()
        assert whole.summary == merge_summaries(p.summary for p in parts)
        sw.same(whole, sw.expected([w for pid in pids for w in windows_of(pid, count)]))
    finally:
        store.close()


def test_sigkill_mid_write_never_damages_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    open_store(path).close()
    steady_pids, steady_count = (3001, 3002), 150
    steady = [writer(path, pid, steady_count, rows=60) for pid in steady_pids]
    rng = random.Random(11)
    rounds, kept, mid_write = 24, {}, 0
    try:
        for round_ in range(rounds):
            victim_pid = 5000 + round_
            # Big windows and fresh stacks: each transaction takes a while to write.
            victim = writer(path, victim_pid, 200, rows=2000)
            assert victim.stdout is not None
            wanted = f"begin {1 + round_ % 6}"
            seen = [victim.stdout.readline().strip()]
            while seen[-1] != wanted:  # until it starts writing its 2nd..7th window
                seen.append(victim.stdout.readline().strip())
                assert seen[-1], seen
            time.sleep(rng.uniform(0.0, 0.002))
            victim.send_signal(signal.SIGKILL)
            seen += victim.stdout.read().split("\n")  # (communicate() would skip what
            victim.stdout.close()                     # readline buffered)
            victim.wait(30)
            assert victim.returncode == -signal.SIGKILL
            reported = sum(line.startswith("wrote") for line in seen)
            mid_write += sum(line.startswith("begin") for line in seen) > reported
            store = open_store(path)
            try:
                assert store.integrity() == "ok"
                present = [w.windows for w in store.workers() if w.pid == victim_pid]
                held = present[0] if present else 0
                # Committed but killed before saying so: one window at most.
                assert reported <= held <= reported + 1
                sw.same(store.query(pid=victim_pid), sw.expected(windows_of(victim_pid, held,
                                                                            rows=2000)))
            finally:
                store.close()
            kept[victim_pid] = held
    finally:
        for proc in steady:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out[-2000:]
    assert mid_write >= rounds // 2, f"only {mid_write} of {rounds} kills hit a write"
    store = open_store(path)
    try:
        assert store.integrity() == "ok"
        for pid in steady_pids:
            sw.same(store.query(pid=pid), sw.expected(windows_of(pid, steady_count, rows=60)))
        counts = {w.pid: w.windows for w in store.workers()}
        assert {pid: counts.get(pid, 0) for pid in kept} == kept
    finally:
        store.close()


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX signals and processes")
