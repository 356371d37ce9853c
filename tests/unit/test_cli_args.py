"""The analysis verbs' arguments: --version, numbers that must make sense, and the
value each verb weighs by (the default rule, and a time the input does not hold)."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

import ember
from ember import Frame, Metadata, Profile
from ember.cli.main import main

APP = "/srv/shop/app.py"
MAIN, PRICE, RENDER = Frame("main", APP, 1), Frame("price", APP, 20), Frame("render", APP, 30)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``ember ARGV`` in this process: exit code, stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --version, --help, usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def timed(path: Path, mode: str = "cpu") -> Path:
    """A profile with CPU and wall times (in wall mode: wall times only)."""
    p = Profile(Metadata(mode=mode, duration=1.0, period=0.01))
    cpu = 1 if mode == "cpu" else 0
    # By samples render leads; by CPU time price does.
    p.add([MAIN, PRICE], samples=40, cpu_ns=cpu * 600_000_000, wall_ns=600_000_000)
    p.add([MAIN, RENDER], samples=60, cpu_ns=cpu * 200_000_000, wall_ns=900_000_000)
    ember.dump(p, path)
    return path


def collapsed(path: Path) -> Path:
    path.write_text(f"{MAIN.render()};{PRICE.render()} 40\n{MAIN.render()};{RENDER.render()} 60\n")
    return path


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"ember {ember.__version__}"
    assert ember.__version__ == importlib.metadata.version("ember")


@pytest.mark.parametrize("verb", [["top", "IN"], ["advise", "IN"], ["diff", "IN", "IN"]])
@pytest.mark.parametrize("bad", ["-5", "0", "2.5", "x"])
def test_counts_must_be_positive_whole_numbers(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, verb: list[str], bad: str) -> None:
    source = str(collapsed(tmp_path / "p.txt"))
    argv = [source if a == "IN" else a for a in verb]
    code, out, err = run(capsys, *argv, "-n", bad)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ember {verb[0]}: error: argument -n:")
    assert "whole number above 0" in lines[0] and repr(bad) in lines[0]


@pytest.mark.parametrize("bad", ["-1", "101", "nan", "inf", "lots"])
def test_min_share_is_a_percentage(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str) -> None:
    code, out, err = run(capsys, "advise", str(collapsed(tmp_path / "p.txt")),
                         "--min-share", bad)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "--min-share: expected a percentage from 0 to 100" in err


def test_min_share_bounds_are_accepted(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    source = str(collapsed(tmp_path / "p.txt"))
    for share in ("0", "100"):
        code, _, err = run(capsys, "advise", source, "--min-share", share)
        assert code == 0, err


@pytest.mark.parametrize("verb", [["top", "IN"], ["advise", "IN"], ["diff", "IN", "IN"],
                                  ["flamegraph", "IN", "-o", "OUT.svg"],
                                  ["convert", "IN", "-o", "OUT.json"],
                                  ["merge", "IN", "IN", "-o", "OUT.svg"]])
@pytest.mark.parametrize("value", ["cpu", "wall"])
def test_a_time_a_collapsed_file_lacks_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, verb: list[str], value: str) -> None:
    source = str(collapsed(tmp_path / "p.txt"))
    out_path = tmp_path / "out"
    argv = [source if a == "IN" else a.replace("OUT", str(out_path)) for a in verb]
    code, out, err = run(capsys, *argv, "--value", value)
    assert code == 2 and out == ""
    kind = {"cpu": "CPU", "wall": "wall"}[value]
    assert err == (f"ember {verb[0]}: {source} has no {kind} times (a collapsed file holds "
                   f"sample counts only): use --value samples\n")
    assert not list(tmp_path.glob("out*"))


def test_cpu_asked_of_a_wall_mode_profile_says_so(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = str(timed(tmp_path / "wall.pb.gz", mode="wall"))
    code, _, err = run(capsys, "top", source, "--value", "cpu")
    assert code == 2
    assert err == (f"ember top: {source} has no CPU times (it was recorded in wall mode): "
                   f"use --value samples or --value wall\n")
    assert run(capsys, "top", source, "--value", "wall")[0] == 0


def test_every_verb_defaults_to_cpu_when_recorded(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = str(timed(tmp_path / "p.pb.gz"))
    rows = json.loads(run(capsys, "top", source, "--json")[1])
    assert rows[0]["function"] == "price" and rows[0]["self"] == 600_000_000
    advice = json.loads(run(capsys, "advise", source, "--json")[1])
    assert advice["value"] == "cpu_ns"
    assert [c["function"] for c in advice["candidates"]] == ["price", "render"]
    assert advice["candidates"][0]["self_share"] == 0.75
    diff = json.loads(run(capsys, "diff", source, str(collapsed(tmp_path / "c.txt")),
                          "--json")[1])
    # One input without CPU times: both are compared by samples.
    assert diff == []
    svg = tmp_path / "p.svg"
    code, _, err = run(capsys, "flamegraph", source, "-o", str(svg))
    assert code == 0 and "by cpu" in err
    assert _svg_payload(svg)["value"] == "cpu_ns"
    speedscope = tmp_path / "p.json"
    assert run(capsys, "convert", source, "-o", str(speedscope))[0] == 0
    assert json.loads(speedscope.read_text())["profiles"][0]["unit"] == "nanoseconds"


def test_samples_are_the_default_without_cpu_times(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = str(collapsed(tmp_path / "p.txt"))
    rows = json.loads(run(capsys, "top", source, "--json")[1])
    assert rows[0]["function"] == "render" and rows[0]["self"] == 60
    assert json.loads(run(capsys, "advise", source, "--json")[1])["value"] == "samples"
    svg = tmp_path / "p.svg"
    assert run(capsys, "flamegraph", source, "-o", str(svg))[0] == 0
    assert _svg_payload(svg)["value"] == "samples"


def test_value_is_asked_of_weighed_outputs_only(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = str(timed(tmp_path / "p.pb.gz"))
    for out, held in (("o.txt", "sample counts only"), ("o.pb.gz", "every value")):
        code, _, err = run(capsys, "convert", source, "-o", str(tmp_path / out),
                           "--value", "cpu")
        assert code == 2 and held in err and len(err.splitlines()) == 1
        assert not (tmp_path / out).exists()


def test_help_states_the_value_rule(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("top", "advise", "diff", "flamegraph", "convert", "merge"):
        code, out, _ = run(capsys, verb, "--help")
        assert code == 0
        assert "default: cpu when every input has CPU times, else samples" in \
            re.sub(r"\s+", " ", out), verb


def _svg_payload(path: Path) -> dict[str, object]:
    import xml.etree.ElementTree as ET

    node = ET.parse(path).getroot().find(".//{http://www.w3.org/2000/svg}script[@id='ember-data']")
    assert node is not None
    data: dict[str, object] = json.loads(node.text or "")
    return data
