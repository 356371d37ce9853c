"""The analysis verbs end to end: top, convert, merge, diff, advise, flamegraph."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ember
from ember import Frame, Profile

APP = "/srv/shop/app.py"
STDLIB = json.__file__
THIRD = "/venv/lib/python3.11/site-packages/lib3/core.py"

MAIN, HANDLER = f"main ({APP}:1)", f"handler ({APP}:10)"
PRICE, RENDER = f"price ({APP}:20)", f"render ({APP}:30)"
DUMPS, THIRD_F = f"dumps ({STDLIB}:183)", f"fast ({THIRD}:5)"


def write(path: Path, lines: dict[str, int]) -> Path:
    path.write_text("".join(f"{stack} {count}\n" for stack, count in lines.items()))
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path / "base.txt", {
        f"{MAIN};{HANDLER};{PRICE}": 50,
        f"{MAIN};{HANDLER};{RENDER}": 30,
        f"{MAIN};{HANDLER};{DUMPS}": 15,
        f"{MAIN};{THIRD_F}": 5,
    })


@pytest.fixture
def head(tmp_path: Path) -> Path:
    return write(tmp_path / "head.txt", {
        f"{MAIN};{HANDLER};{PRICE}": 140,  # 70% now: grew
        f"{MAIN};{HANDLER};{RENDER}": 30,  # 15%: shrank
        f"{MAIN};{HANDLER};{DUMPS}": 20,
        f"{MAIN};{THIRD_F}": 10,
    })


def ember_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ember", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_top_self_total_paths_and_json(base: Path) -> None:
    result = ember_cli("top", str(base), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["function"] for r in rows[:2]] == ["price", "render"]
    assert rows[0]["self"] == 50 and rows[0]["self_share"] == 0.5
    by_total = json.loads(ember_cli("top", str(base), "--by", "total", "--json").stdout)
    assert by_total[0]["function"] == "main" and by_total[0]["total"] == 100
    assert by_total[1]["function"] == "handler" and by_total[1]["total"] == 95
    text = ember_cli("top", str(base), "-n", "2").stdout.splitlines()
    assert len(text) == 3 and "50.00%" in text[1] and "price" in text[1]
    paths = json.loads(ember_cli("top", str(base), "--paths", "--json").stdout)
    assert paths[0]["path"] == [MAIN, HANDLER, PRICE] and paths[0]["value"] == 50


def test_convert_and_merge(tmp_path: Path, base: Path, head: Path) -> None:
    out = tmp_path / "copy.folded"
    assert ember_cli("convert", str(base), "-o", str(out)).returncode == 0
    assert ember.load(out) == ember.load(base)
    merged = tmp_path / "merged.txt"
    result = ember_cli("merge", str(base), str(head), "-o", str(merged))
    assert result.returncode == 0, result.stderr
    totals = ember.load(merged).canonical()
    assert totals[((Frame("main", APP, 1), Frame("handler", APP, 10), Frame("price", APP, 20)),
                   ())][0] == 190
    assert ember.load(merged).totals().samples == 300


def test_diff_prints_what_changed_most_grown_and_shrunk(base: Path, head: Path) -> None:
    result = ember_cli("diff", str(base), str(head))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["before", "after", "change", "function", "(self", "share", "of",
                                "samples)"]
    assert lines[1].split() == ["50.00%", "70.00%", "+20.00%", "price", f"({APP}:20)"]
    assert lines[2].split() == ["30.00%", "15.00%", "-15.00%", "render", f"({APP}:30)"]
    assert lines[3].split() == ["15.00%", "10.00%", "-5.00%", "dumps", f"({STDLIB}:183)"]
    assert len(lines) == 4  # fast's share did not change
    rows = json.loads(ember_cli("diff", str(base), str(head), "--json", "-n", "2").stdout)
    assert [(r["function"], r["state"], r["change"]) for r in rows] == [
        ("price", "grew", 0.2), ("render", "shrank", -0.15)]
    text = ember_cli("diff", str(base), str(head), "-n", "1").stdout
    assert text.splitlines()[-1] == "... 2 more (-n 3 shows all)"


def test_diff_tags_new_gone_and_moved_functions(tmp_path: Path, base: Path) -> None:
    moved = write(tmp_path / "moved.txt", {
        f"{MAIN};{HANDLER};price ({APP}:22)": 50,  # two lines added above price
        f"{MAIN};{HANDLER};fresh ({APP}:40)": 45,
        f"{MAIN};{THIRD_F}": 5,
    })
    lines = ember_cli("diff", str(base), str(moved)).stdout.splitlines()
    assert any(line.split()[3:] == ["fresh", f"({APP}:40)", "[new]"] for line in lines)
    assert any(line.split()[3:] == ["render", f"({APP}:30)", "[gone]"] for line in lines)
    assert not any("price" in line for line in lines)  # same share, line moved: no change
    rows = json.loads(ember_cli("diff", str(base), str(moved), "--json").stdout)
    assert {r["function"]: r["state"] for r in rows} == {
        "fresh": "new", "render": "gone", "dumps": "gone"}


def test_advise_keeps_to_app_code_unless_asked(base: Path) -> None:
    result = ember_cli("advise", str(base), "--json")
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    assert advice["value"] == "samples" and advice["total"] == 100
    found = advice["candidates"]
    assert [a["function"] for a in found] == ["price", "render"]
    assert found[0]["self_share"] == 0.5 and found[0]["kind"] == "app"
    assert found[0]["paths"][0]["callers"] == [HANDLER, MAIN]
    assert "own lines" in found[0]["reason"]
    wider = json.loads(ember_cli("advise", str(base), "--json", "--include-stdlib",
                                 "--include-third-party").stdout)
    assert {a["function"] for a in wider["candidates"]} == {"price", "render", "dumps", "fast"}
    text = ember_cli("advise", str(base), "-n", "1").stdout
    assert text.startswith("1. price") and "why:" in text and "via handler <- main" in text
    assert "note: the profile has no native frames" in text


def test_advise_leaves_out_callers(tmp_path: Path) -> None:
    p = write(tmp_path / "p.txt", {f"{MAIN};{HANDLER}": 10, f"{MAIN};{HANDLER};{PRICE}": 90})
    advice = json.loads(ember_cli("advise", str(p), "--json").stdout)
    assert [a["function"] for a in advice["candidates"]] == ["price"]
    text = ember_cli("advise", str(p), "--min-share", "95").stdout
    assert text.startswith("no app function's own bytecode holds 95% or more of the samples")


def test_endpoint_filter_needs_known_endpoint(base: Path) -> None:
    result = ember_cli("top", str(base), "--endpoint", "GET /x")
    assert result.returncode == 2
    assert "no samples for endpoint 'GET /x'" in result.stderr


@pytest.mark.parametrize("verb", [["top"], ["advise"], ["convert", "-o", "o.txt"],
                                  ["merge", "-o", "o.txt"], ["flamegraph", "-o", "o.svg"]])
@pytest.mark.parametrize(("content", "expected"), [
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "not a profile"),
    (b"main;f 3\nmain;g\n", ":2:"),
    (b"main;f 3\nmain;g 1.5x\n", ":2:"),
])
def test_bad_inputs_exit_2_with_one_line_naming_the_file(
        tmp_path: Path, verb: list[str], content: bytes, expected: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    args = [verb[0], str(bad), *verb[1:]]
    result = ember_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_input_file(tmp_path: Path) -> None:
    result = ember_cli("top", str(tmp_path / "nope.txt"))
    assert result.returncode == 2 and "No such file" in result.stderr


def test_unknown_output_extension(base: Path, tmp_path: Path) -> None:
    result = ember_cli("convert", str(base), "-o", str(tmp_path / "x.docx"))
    assert result.returncode == 2 and "extension" in result.stderr
    assert not (tmp_path / "x.docx").exists()


def test_profile_api_matches_cli(base: Path) -> None:
    profile: Profile = ember.load(base)
    assert profile.top_functions(1)[0].frame == Frame("price", APP, 20)


def labelled_profile(path: Path) -> Path:
    p = Profile()
    main, get, post = Frame("main", APP, 1), Frame("get_item", APP, 40), Frame("checkout", APP, 50)
    p.add([main, get], samples=30, cpu_ns=3_000_000,
          labels=ember.make_labels({"endpoint": "GET /items/{id}"}))
    p.add([main, post], samples=70, cpu_ns=7_000_000,
          labels=ember.make_labels({"endpoint": "POST /checkout"}))
    ember.dump(p, path)
    return path


def test_endpoint_filter_on_a_labelled_pprof(tmp_path: Path) -> None:
    pprof = labelled_profile(tmp_path / "labelled.pb.gz")
    rows = json.loads(ember_cli("top", str(pprof), "--endpoint", "GET /items/{id}",
                                "--json").stdout)
    assert [r["function"] for r in rows] == ["get_item", "main"]
    assert rows[0]["self_share"] == 1.0
    result = ember_cli("top", str(pprof), "--endpoint", "GET /nope")
    assert result.returncode == 2 and "POST /checkout" in result.stderr


def test_convert_between_every_format_keeps_stacks_and_counts(tmp_path: Path) -> None:
    source = labelled_profile(tmp_path / "source.pb.gz")
    expected = ember.load(source)
    chain = ["a.json", "b.txt", "c.pprof"]
    previous = source
    for name in chain:
        out = tmp_path / name
        result = ember_cli("convert", str(previous), "-o", str(out))
        assert result.returncode == 0, result.stderr
        previous = out
    back = ember.load(previous)
    assert {s: v[0] for (s, _), v in back.canonical().items()} == \
        {s: v[0] for (s, _), v in expected.merge().canonical().items()}


def test_flamegraph_and_diff_write_svg(tmp_path: Path, base: Path, head: Path) -> None:
    import xml.etree.ElementTree as ET

    out = tmp_path / "flame.svg"
    result = ember_cli("flamegraph", str(base), str(head), "-o", str(out), "--title", "T<&>")
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    ET.fromstring(text)  # well-formed
    assert "price" in text and "T&lt;&amp;&gt;" in text
    diff = tmp_path / "diff.svg"
    result = ember_cli("diff", str(base), str(head), "-o", str(diff))
    assert result.returncode == 0, result.stderr
    ET.fromstring(diff.read_text())
    assert ember_cli("flamegraph", str(base), "-o", str(tmp_path / "x.png")).returncode == 2


def test_version() -> None:
    result = ember_cli("--version")
    assert result.returncode == 0 and result.stdout == f"ember {ember.__version__}\n"


# -- real recordings of one program: in-process and py-spy, two versions ------------------

LOOPS = textwrap.dedent("""\
    import sys, time

    def sieve(n):
        flags = [True] * n
        for i in range(2, n):
            if flags[i]:
                for j in range(i * i, n, i):
                    flags[j] = False
        return flags

    def price(n):
        return sum(i * i % 7 for i in range(n))

    def main(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sieve(30000)
            price(20000)

    main(float(sys.argv[1]))
""")
"""Pure Python loops (the pure-Python sampler meets no C call releasing the GIL)."""

HOT = textwrap.dedent("""\
    import hashlib, sys, time

    def sieve(n):
        flags = [True] * n
        for i in range(2, n):
            if flags[i]:
                for j in range(i * i, n, i):
                    flags[j] = False
        return flags

    def digest(n):
        h = hashlib.sha256()
        data = b"x" * 65536
        for _ in range(n):
            h.update(data)
        return h.hexdigest()

    def main(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sieve(30000)
            digest(40)

    main(float(sys.argv[1]))
""")
"""sieve, and a digest whose time is in C (hashlib)."""

needs_pyspy = pytest.mark.skipif(
    shutil.which("py-spy", path=os.path.dirname(sys.executable)) is None
    and shutil.which("py-spy") is None, reason="py-spy is not installed ([pyspy] extra)")


def record(tmp_path: Path, out: str, *options: str, source: str = LOOPS) -> Path:
    """Run hot.py (as ``python hot.py``, from its folder) under ``ember record``."""
    (tmp_path / "hot.py").write_text(source)
    result = ember_cli("record", "--rate", "200", "-o", out, *options, "--",
                       sys.executable, "hot.py", "1.2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / out


def svg_names(path: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    node = ET.parse(path).getroot().find(".//{http://www.w3.org/2000/svg}script[@id='ember-data']")
    assert node is not None
    names: list[str] = json.loads(node.text or "")["names"]
    return names


def test_diff_matches_a_function_whose_line_moved(tmp_path: Path) -> None:
    before = record(tmp_path, "before.pb.gz")
    edited = LOOPS.replace("def sieve(n):", "# sieve: the primes below n\ndef sieve(n):")
    after = record(tmp_path, "after.pb.gz", source=edited)
    assert {f.line for f in ember.load(after).frames if f.name == "sieve"} == {4}
    result = ember_cli("diff", str(before), str(after), "--json", "-n", "100",
                       "-o", str(tmp_path / "d.svg"))
    assert result.returncode == 0, result.stderr
    # hot.py's functions (a rare sample may catch ember's GC callback in one run only)
    rows = [r for r in json.loads(result.stdout) if r["file"].endswith("hot.py")]
    assert not [r for r in rows if r["state"] in ("new", "gone")], rows
    (sieve,) = [r for r in rows if r["function"] == "sieve"]
    assert sieve["line"] == 4 and sieve["base_line"] == 3
    assert sieve["base_share"] > 0.1 and sieve["head_share"] > 0.1
    assert svg_names(tmp_path / "d.svg").count("sieve") == 1


@needs_pyspy
def test_py_spy_and_in_process_frames_are_one_function(tmp_path: Path) -> None:
    ours = record(tmp_path, "ours.pb.gz")
    theirs = record(tmp_path, "theirs.txt", "--backend", "py-spy")
    merged = tmp_path / "merged.txt"
    assert ember_cli("merge", str(ours), str(theirs), "-o", str(merged)).returncode == 0
    sieves = {f for f in ember.load(merged).frames if f.name == "sieve"}
    assert sieves == {Frame("sieve", str(tmp_path / "hot.py"), 3)}
    rows = json.loads(ember_cli("diff", str(ours), str(theirs), "--json", "-n", "100").stdout)
    rows = [r for r in rows if r["file"].endswith("hot.py")]
    assert not [r for r in rows if r["state"] in ("new", "gone")], rows


def test_advise_on_an_in_process_recording(tmp_path: Path) -> None:
    advice = json.loads(ember_cli("advise", str(record(tmp_path, "p.pb.gz")), "--json").stdout)
    assert advice["value"] == "cpu_ns" and advice["native_frames"] is False
    found = [c["function"] for c in advice["candidates"]]
    assert "sieve" in found and "main" not in found and "<module>" not in found


@needs_pyspy
def test_advise_on_a_native_recording_says_where_c_time_is(tmp_path: Path) -> None:
    native = record(tmp_path, "n.txt", "--backend", "py-spy", "--native", source=HOT)
    paths = json.loads(ember_cli("top", str(native), "--paths", "--json").stdout)
    python = [p["path"] for p in paths if any("hot.py:" in frame for frame in p["path"])]
    assert python and all(path[0].startswith("<module> (") for path in python)  # no libc start
    advice = json.loads(ember_cli("advise", str(native), "--json").stdout)
    assert advice["native_frames"] is True
    found = [c["function"] for c in advice["candidates"]]
    assert found[0] == "sieve" and "digest" not in found and "main" not in found
    (digest,) = [n for n in advice["native"] if n["function"] == "digest"]
    assert digest["share"] > 0.2
    assert any("hashopenssl" in c["function"] or "libcrypto" in c["function"]
               for c in digest["callees"])
    text = ember_cli("advise", str(native)).stdout
    assert "time in C called from Python" in text and "digest" in text.split("time in C")[1]
