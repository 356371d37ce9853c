"""ember's pprof files and ``go tool pprof``: the same totals, Go re-encodes what
ember writes, ember reads Go's runtime profiles (skipped when ``go`` is missing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import ember
from profiles import awkward_profile

GO = shutil.which("go")
needs_go = pytest.mark.skipif(GO is None, reason="`go` is not on PATH: cannot run go tool pprof")


def go_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(HOME=str(home), GOCACHE=str(home / "gocache"), GOPATH=str(home / "gopath"),
               GOPROXY="off", GOTOOLCHAIN="local", PPROF_TMPDIR=str(home / "pprof"))
    return env


def go(args: list[str], home: Path, cwd: Path | None = None) -> bytes:
    assert GO is not None
    result = subprocess.run([GO, *args], env=go_env(home), cwd=cwd or home,
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def raw_totals(path: Path, home: Path) -> tuple[list[str], list[int]]:
    """Sample type names and summed values from ``go tool pprof -raw``."""
    text = go(["tool", "pprof", "-raw", str(path)], home).decode()
    body = text.split("\nSamples:\n", 1)[1].split("\nLocations\n", 1)[0]
    header, *rows = body.splitlines()
    names = [n.removesuffix("[dflt]") for n in header.split()]
    totals = [0] * len(names)
    for row in rows:
        match = re.fullmatch(r"\s*((?:-?\d+\s+)*-?\d+):(?:\s+\d+)*\s*", row)
        if match:
            for i, value in enumerate(match.group(1).split()):
                totals[i] += int(value)
    return names, totals


def top_total(path: Path, home: Path, index: str) -> int:
    args = ["tool", "pprof", "-top", f"-sample_index={index}", "-unit=ns", str(path)]
    text = go(args, home).decode()
    match = re.search(r"of (-?\d+)(?:ns)? total", text)
    assert match, text
    return int(match.group(1))


@pytest.fixture(scope="module")
def go_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gohome")


@needs_go
def test_go_tool_pprof_sees_the_same_totals(tmp_path: Path, go_home: Path) -> None:
    p = awkward_profile()
    path = tmp_path / "ember.pb.gz"
    ember.dump(p, path)
    totals = p.totals()
    names, raw = raw_totals(path, go_home)
    assert names == ["samples/count", "cpu/nanoseconds", "wall/nanoseconds"]
    assert raw == [totals.samples, totals.cpu_ns, totals.wall_ns]
    assert top_total(path, go_home, "samples") == totals.samples
    assert top_total(path, go_home, "cpu") == totals.cpu_ns
    assert top_total(path, go_home, "wall") == totals.wall_ns


@needs_go
def test_pprof_reencoding_reads_back_equal(tmp_path: Path, go_home: Path) -> None:
    p = awkward_profile()
    path = tmp_path / "ember.pb.gz"
    ember.dump(p, path)
    other = tmp_path / "other.pb.gz"
    other.write_bytes(go(["tool", "pprof", "-proto", str(path)], go_home))
    back = ember.load(other)
    assert back.canonical() == p.canonical()
    assert back.meta == p.meta


GO_PROGRAM = """\
package main

import (
	"os"
	"runtime/pprof"
	"time"
)

var sink uint64

func step(x uint64) uint64 { return x*6364136223846793005 + 1442695040888963407 }

//go:noinline
func burn(d time.Duration) uint64 {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 20000; i++ {
			x = step(x)
		}
	}
	return x
}

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	sink = burn(time.Second)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		panic(err)
	}
}
"""


@pytest.fixture(scope="module")
def go_cpu_profile(tmp_path_factory: pytest.TempPathFactory, go_home: Path) -> Path:
    work = tmp_path_factory.mktemp("goprog")
    (work / "main.go").write_text(textwrap.dedent(GO_PROGRAM))
    out = work / "cpu.pprof"
    go(["run", "main.go", str(out)], go_home, cwd=work)
    return out


@needs_go
def test_reads_a_go_runtime_cpu_profile(go_cpu_profile: Path, go_home: Path) -> None:
    p = ember.load(go_cpu_profile)
    names, raw = raw_totals(go_cpu_profile, go_home)
    assert names == ["samples/count", "cpu/nanoseconds"]
    totals = p.totals()
    assert [totals.samples, totals.cpu_ns] == raw
    assert totals.samples > 20 and totals.wall_ns == 0
    assert p.meta.period == 0.01 and p.meta.start > 1e9 and 0.9 < p.meta.duration < 5
    top = p.top_functions(1000, by="total")
    assert {"main.burn", "main.main", "runtime.main"} <= {s.frame.name for s in top}
    assert all(s.frame.file.endswith("main.go") for s in top if s.frame.name.startswith("main."))
    # one frame per line of main.burn; together they hold (nearly) all of the samples
    in_burn = sum(s.total_value for s in top if s.frame.name == "main.burn")
    assert in_burn >= 0.8 * totals.samples
    inlined = 0
    for stack, _, values in p.samples():  # root first: runtime.main > main.main > main.burn
        names = [f.name for f in stack]
        if "main.burn" in names:
            assert names.index("runtime.main") < names.index("main.main") < names.index(
                "main.burn")
        if "main.step" in names:  # inlined into burn: one location, two lines, two frames
            assert names[names.index("main.step") - 1] == "main.burn"
            inlined += values.samples
    assert inlined > 0


@needs_go
def test_go_profile_survives_ember_round_trip(go_cpu_profile: Path, go_home: Path,
                                              tmp_path: Path) -> None:
    p = ember.load(go_cpu_profile)
    out = tmp_path / "again.pb.gz"
    ember.dump(p, out)
    assert ember.load(out) == p
    _, raw = raw_totals(out, go_home)
    assert raw[:2] == [p.totals().samples, p.totals().cpu_ns]
