"""SVG flamegraphs: well-formed, self-contained, escaped, faithful to the
profile, coloured by package, differential colours (the script run in
Chromium: tests/integration/test_svg_chromium.py)."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember import formats
from ember.errors import FormatError
from ember.formats import collapsed, svg
from ember.profile import Frame, Profile
from profiles import (
    EVIL,
    GET,
    LOADS,
    MAIN,
    SLEEP,
    render,
    render_diff,
    rgb,
    sample_profile,
)

NS = {"s": "http://www.w3.org/2000/svg"}

def payload(doc: bytes) -> dict[str, Any]:
    root = ET.fromstring(doc)
    node = root.find(".//s:script[@id='ember-data']", NS)
    assert node is not None and node.get("type") == "application/json"
    data: dict[str, Any] = json.loads(node.text or "")
    return data


def frame_groups(doc: bytes) -> list[ET.Element]:
    frames = ET.fromstring(doc).find(".//s:g[@id='frames']", NS)
    assert frames is not None
    return list(frames)


def node_paths(data: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    current: list[str] = []
    for f, d in zip(data["frame"], data["depth"], strict=True):
        del current[max(d - 1, 0):]
        if d:
            current.append(data["names"][f])
        out.append(tuple(current))
    return out


# -- the format ------------------------------------------------------------------------


def test_registered_and_write_only(tmp_path: Path) -> None:
    assert formats.for_path("x.svg") is svg  # type: ignore[comparison-overlap]
    assert not svg.sniff(b"<?xml version='1.0'?><svg")
    with pytest.raises(FormatError, match="cannot be read back"):
        svg.read(io.BytesIO(b"<svg/>"), "x.svg")
    target = tmp_path / "x.svg"
    ember.dump(sample_profile(), target, title="T <1>", subtitle="S & s", inverted=True)
    root = ET.parse(target).getroot()
    assert root.find(".//s:text[@id='title']", NS).text == "T <1>"  # type: ignore[union-attr]
    assert root.find(".//s:text[@id='subtitle']", NS).text == "S & s"  # type: ignore[union-attr]


def test_well_formed_and_self_contained() -> None:
    doc = render(sample_profile(), title="t", subtitle="s")
    root = ET.fromstring(doc)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    scripts = root.findall(".//s:script", NS)
    assert [s.get("type") for s in scripts] == ["application/json", "text/ecmascript"]
    text = doc.decode()
    assert "<![CDATA[" in text
    assert not re.search(r"(href|src)\s*=", text)
    assert "url(" not in text and "@import" not in text
    # the only URL is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}


def test_names_are_escaped_everywhere() -> None:
    doc = render(sample_profile(), title=EVIL, subtitle=EVIL)
    assert b"<script>alert" not in doc
    assert EVIL.encode() not in doc  # in the JSON payload too: \u003c escapes
    root = ET.fromstring(doc)
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert EVIL in labels  # the label and the title round-trip as text
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith(EVIL + " (/srv/app/views.py:3)") for t in titles)
    assert EVIL in payload(doc)["names"]
    code = root.findall(".//s:script", NS)[1].text or ""
    assert "alert" not in code and "innerHTML" not in code and "eval(" not in code


def test_payload_totals_equal_the_profile() -> None:
    profile = sample_profile()
    data = payload(render(profile))
    assert data["total"] == profile.totals().samples == data["totals"][0]
    expected: dict[tuple[str, ...], int] = {}
    for stack, _, values in profile.samples():
        names = tuple(f.name for f in stack)
        for d in range(len(names) + 1):
            expected[names[:d]] = expected.get(names[:d], 0) + values.samples
    got = dict(zip(node_paths(data), data["totals"], strict=True))
    assert got == expected
    assert len(frame_groups(render(profile))) == len(data["frame"])


def test_inverted_puts_leaves_at_the_top() -> None:
    def ys(doc: bytes) -> dict[str, float]:
        data = payload(doc)
        out: dict[str, float] = {}
        for i, g in enumerate(frame_groups(doc)):
            rect = g.find("s:rect", NS)
            assert rect is not None
            out.setdefault(data["names"][data["frame"][i]], float(rect.get("y", "0")))
        return out

    normal = ys(render(sample_profile()))
    assert normal["time.sleep"] < normal["get"] < normal["main"] < normal["all"]
    inverted_doc = render(sample_profile(), inverted=True)
    inverted = ys(inverted_doc)
    assert inverted["all"] < inverted["time.sleep"] < inverted["get"]
    data = payload(inverted_doc)
    top_row = {data["names"][f] for f, d in zip(data["frame"], data["depth"], strict=True)
               if d == 1}
    assert top_row == {"time.sleep", "loads", "main"}  # the functions that ran
    assert data["inverted"] is True
    assert ET.fromstring(inverted_doc).find(".//s:text[@id='title']", NS).text == "Icicle Graph"  # type: ignore[union-attr]



def test_colours_by_package() -> None:
    assert svg.classify(MAIN) == "app"
    assert svg.classify(LOADS) == "stdlib"
    assert svg.classify(Frame("x", "/usr/lib/python3.12/threading.py", 1)) == "stdlib"
    assert svg.classify(GET) == "third-party"
    assert svg.classify(Frame("x", "/usr/lib/python3/dist-packages/yaml/x.py", 1)) == "third-party"
    for native in (SLEEP, Frame("f", "<built-in>"), Frame("f", "<frozen importlib._bootstrap>", 5),
                   Frame("f", "/x/_speedups.cpython-311-x86_64-linux-gnu.so", 0),
                   collapsed.parse_frame("_PyEval_EvalFrameDefault (libpython3.11.so.1.0)"),
                   # py-spy --native: versioned libraries, the vdso, unknown places
                   Frame("SHA256_Update", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
                   Frame("[libc.so.6]", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                   Frame("__vdso_clock_gettime", "[vdso]"), Frame("[unknown]", "?")):
        assert svg.classify(native) == "native", native
    doc = render(sample_profile())
    data = payload(doc)
    fills = {}
    for i, g in enumerate(frame_groups(doc)):
        rect = g.find("s:rect", NS)
        assert rect is not None
        fills[data["names"][data["frame"][i]]] = rgb(rect.get("fill", ""))
    kinds = dict(zip(data["names"], data["kinds"], strict=True))
    assert kinds == {"all": "root", "main": "app", EVIL: "app", "loads": "stdlib",
                     "get": "third-party", "time.sleep": "native"}
    red, green, blue = fills["main"]
    assert red >= 205 and blue <= 55  # warm
    red, green, blue = fills["loads"]
    assert blue >= 200 and red <= 110  # aqua
    red, green, blue = fills["get"]
    assert green >= 190 and red <= 110 and blue <= 110  # green
    red, green, blue = fills["time.sleep"]
    assert red == green and blue == red + 25  # grey-violet
    assert len({fills[n] for n in ("main", "loads", "get", "time.sleep")}) == 4


def test_differential_colours_are_normalised() -> None:
    base, head = Profile(), Profile()
    a, b, c = Frame("grew", "/a.py", 1), Frame("shrank", "/b.py", 1), Frame("same", "/c.py", 1)
    base.add([MAIN, a], 20)
    base.add([MAIN, b], 40)
    base.add([MAIN, c], 40)
    head.add([MAIN, a], 80)  # share 20% -> 40%: doubled
    head.add([MAIN, b], 40)  # same count, share 40% -> 20%: halved
    head.add([MAIN, c], 80)  # share unchanged
    doc = render_diff(base, head, title="diff")
    data = payload(doc)
    assert data["diff"] is True and data["baseTotal"] == 100 and data["headTotal"] == 200
    fills, titles = {}, {}
    for i, g in enumerate(frame_groups(doc)):
        name = data["names"][data["frame"][i]]
        rect, title = g.find("s:rect", NS), g.find("s:title", NS)
        assert rect is not None and title is not None
        fills[name], titles[name] = rgb(rect.get("fill", "")), title.text or ""
    red, green, blue = fills["grew"]
    assert red == 255 and green == blue < 200  # red
    red, green, blue = fills["shrank"]
    assert blue == 255 and red == green < 200  # blue
    assert fills["same"] == fills["main"] == fills["all"] == rgb(svg.DIFF_NEUTRAL)
    assert "base: 20 samples, 20.00%" in titles["grew"]
    assert "head: 80 samples, 40.00%" in titles["grew"]
    assert "+20.00 pp" in titles["grew"] and "-20.00 pp" in titles["shrank"]
    assert "+0.00 pp" in titles["same"]
    # widths: mean of both shares by default
    widths = {data["names"][data["frame"][i]]: float(g.find("s:rect", NS).get("width", ""))  # type: ignore[union-attr]
              for i, g in enumerate(frame_groups(doc))}
    assert widths["grew"] == pytest.approx(1180 * 0.3, abs=0.01)
    head_only = payload(render_diff(base, head, widths="head"))
    assert head_only["mix"] == 0.0


def test_diff_keeps_vanished_code_visible() -> None:
    base, head = Profile(), Profile()
    base.add([MAIN, Frame("gone", "/g.py", 1)], 50)
    base.add([MAIN], 50)
    head.add([MAIN], 10)
    data = payload(render_diff(base, head))
    assert "gone" in data["names"]


def test_narrow_frames_are_elided_and_counted() -> None:
    p = Profile()
    p.add([MAIN], 1_000_000)
    for i in range(500):
        p.add([MAIN, Frame(f"tiny{i}", "/t.py", i)], 1)
    doc = render(p)
    data = payload(doc)
    assert data["elided"] == 500
    assert data["totals"][0] == 1_000_500
    info = ET.fromstring(doc).find(".//s:text[@id='info']", NS)
    assert info is not None and "500 narrower than 0.1 px elided" in (info.text or "")
    assert render(p, min_width_px=0).count(b"tiny") > 500


@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_any_name_gives_well_formed_svg(names: list[str]) -> None:
    p = Profile()
    for i, name in enumerate(names):
        p.add([Frame(name, "/srv/x.py", i), Frame(name + "!", "", 0)], i + 1)
    doc = render(p, title=names[0])
    ET.fromstring(doc)
    assert set(names) <= set(payload(doc)["names"])
    assert b"<script>alert" not in doc


def test_value_kinds() -> None:
    p = Profile()
    p.add([MAIN], 1, cpu_ns=2_000_000_000)
    data = payload(render(p, value="cpu_ns"))
    assert data["total"] == 2_000_000_000
    with pytest.raises(ValueError, match="unknown value kind"):
        render(p, value="bogus")
