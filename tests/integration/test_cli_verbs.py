"""The analysis verbs end to end: top, convert, merge, diff, advise, flamegraph."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_diff_prints_what_grew_most(base: Path, head: Path) -> None:
    result = ember_cli("diff", str(base), str(head))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "price" in lines[1]
    assert "50.00%" in lines[1] and "70.00%" in lines[1] and "+20.00%" in lines[1]
    assert not any("render" in line for line in lines)  # it shrank


def test_advise_keeps_to_app_code_unless_asked(base: Path) -> None:
    result = ember_cli("advise", str(base), "--json")
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    assert [a["function"] for a in advice] == ["price", "render"]
    assert advice[0]["self_share"] == 0.5 and advice[0]["kind"] == "app"
    assert advice[0]["paths"][0]["callers"] == [HANDLER, MAIN]
    assert "own bytecode" in advice[0]["reason"]
    wider = json.loads(ember_cli("advise", str(base), "--json", "--include-stdlib",
                                 "--include-third-party").stdout)
    assert {a["function"] for a in wider} == {"price", "render", "dumps", "fast"}
    text = ember_cli("advise", str(base), "-n", "1").stdout
    assert text.startswith("1. price") and "why:" in text and "via handler <- main" in text


def test_advise_reason_when_time_is_in_callees(tmp_path: Path) -> None:
    p = write(tmp_path / "p.txt", {f"{MAIN};{HANDLER}": 10, f"{MAIN};{HANDLER};{PRICE}": 90})
    advice = json.loads(ember_cli("advise", str(p), "--json").stdout)
    handler = next(a for a in advice if a["function"] == "handler")
    assert handler["self_share"] == 0.1 and "helps less" in handler["reason"]


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
