"""The flamegraph's script run for real in headless Chromium: search, zoom,
reset, the differential graph (skipped only when no Chromium can be found)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ember.profile import Frame, Profile
from profiles import EVIL, GET, LOADS, MAIN, render, render_diff, sample_profile

CHROMIUM = next((b for b in map(shutil.which, ("chromium", "chromium-browser",
                                                "google-chrome")) if b), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")

PRE = """<script type="text/ecmascript"><![CDATA[
window.__alerts = 0;
window.alert = function () { window.__alerts += 1; };
]]></script>
"""


def run_in_chromium(doc: bytes, probe_js: str, tmp_path: Path) -> dict[str, Any]:
    """Load the SVG in headless Chromium, run ``probe_js`` after ember's script
    (``out`` is the object to fill), return ``out`` from the dumped DOM."""
    text = doc.decode("utf-8")
    head_end = text.index(">", text.index("<svg")) + 1
    probe = ("<script type=\"text/ecmascript\"><![CDATA[\nvar out = {};\ntry {\n" + probe_js
             + "\n} catch (e) { out.error = String(e) + ' ' + e.stack; }\n"
             "out.alerts = window.__alerts;\n"
             "var t = document.createElementNS('http://www.w3.org/2000/svg', 'text');\n"
             "t.setAttribute('id', 'probe-result'); t.textContent = JSON.stringify(out);\n"
             "document.documentElement.appendChild(t);\n]]></script>\n")
    text = text[:head_end] + "\n" + PRE + text[head_end:].replace("</svg>\n", probe + "</svg>\n")
    page = tmp_path / "probe.svg"
    page.write_text(text, "utf-8")
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r'<text id="probe-result">(.*?)</text>', done.stdout, re.DOTALL)
    assert match, f"no probe result; exit {done.returncode}; stderr: {done.stderr[-2000:]}"
    out: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    assert "error" not in out, out["error"]
    return out


@needs_chromium
def test_script_search_zoom_reset_in_chromium(tmp_path: Path) -> None:
    doc = render(sample_profile(), title=EVIL)
    out = run_in_chromium(doc, """
var f = window.emberFlame, d = f.data;
function find(name) { for (var i = 0; i < d.frame.length; i++) {
  if (d.names[d.frame[i]] === name) { return i; } } return -1; }
out.evilLabel = f.geometry(find(d.names[2])).label;
out.evilName = d.names[2];
out.title = document.getElementById('title').textContent;
out.search = f.search('alert');
out.matchedText = document.getElementById('matched').textContent;
out.searchFill = f.geometry(find(d.names[2])).fill;
out.regex = f.search('^(get|loads)$');
out.substring = f.search('(unclosed');
f.clearSearch();
out.clearedFill = f.geometry(find('get')).fill;
var g = find('get');
out.zoomed = f.zoom(g);
out.visible = f.visible().map(function (i) { return d.names[d.frame[i]]; });
out.zoomGeo = f.geometry(g);
out.childGeo = f.geometry(find('time.sleep'));
out.mainGeo = f.geometry(find('main'));
f.reset();
out.afterReset = f.visible().length;
out.resetGeo = f.geometry(g);
out.scripts = document.getElementsByTagName('script').length;
""", tmp_path)
    assert out["alerts"] == 0
    assert out["evilName"] == EVIL and out["evilLabel"] == EVIL
    assert out["title"] == EVIL
    assert out["search"] == {"frames": 1, "value": 30, "total": 100, "percent": 30}
    assert out["matchedText"].startswith("Matched: 30.00%")
    assert out["searchFill"] == "rgb(230,0,230)"
    assert out["regex"]["percent"] == 80 and out["regex"]["frames"] == 2
    assert out["substring"]["frames"] == 0  # invalid regex -> substring search
    assert out["clearedFill"] != "rgb(230,0,230)"
    assert out["zoomed"] is True
    assert sorted(out["visible"]) == ["all", "get", "main", "time.sleep"]
    assert out["zoomGeo"]["x"] == 10 and out["zoomGeo"]["width"] == 1180
    assert out["childGeo"]["width"] == 1180
    assert out["mainGeo"]["width"] == 1180  # ancestors span the width
    assert out["afterReset"] == 6
    assert out["resetGeo"]["width"] == pytest.approx(590, abs=0.01)
    assert out["scripts"] == 4  # PRE, payload, ember's, the probe: nothing injected


@needs_chromium
def test_search_counts_recursion_once_in_chromium(tmp_path: Path) -> None:
    p = Profile()
    rec = Frame("rec", "/r.py", 1)
    p.add([MAIN, rec, rec, rec], 40)
    p.add([MAIN, rec], 10)
    p.add([MAIN], 50)
    out = run_in_chromium(render(p, inverted=False), "out.s = window.emberFlame.search('rec');",
                          tmp_path)
    assert out["s"]["frames"] == 3 and out["s"]["percent"] == 50


@needs_chromium
def test_diff_script_in_chromium(tmp_path: Path) -> None:
    base, head = Profile(), Profile()
    base.add([MAIN, GET], 10)
    base.add([MAIN, LOADS], 30)
    head.add([MAIN, GET], 30)
    head.add([MAIN, LOADS], 10)
    out = run_in_chromium(render_diff(base, head), """
var f = window.emberFlame;
out.search = f.search('get');
out.zoom = f.zoom(1);
out.geo = f.geometry(1);
""", tmp_path)
    assert out["search"]["percent"] == 75  # share of head
    assert out["zoom"] is True and out["geo"]["width"] == 1180
