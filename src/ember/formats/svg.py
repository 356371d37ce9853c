"""Interactive SVG flamegraphs (write only), plain and differential.

The file is self-contained: no external reference, one inline script (from
``flamegraph.js``) and the data it works on as a JSON payload in a
``<script type="application/json" id="ember-data">`` element. Every frame is
also drawn as ``<g><title/><rect/><text/></g>`` so the picture and its
tooltips work without scripts (image viewers, ``<img>``). With scripts: click
a frame to zoom, "Reset Zoom", "Search" (regular expression, or substring if
the pattern is not one) highlights the matching frames and shows the matched
share of the total, hovering shows a frame's details at the bottom.

Safety: every name is XML-escaped where it is markup (and characters XML
cannot hold become U+FFFD); in the JSON payload ``<``, ``>`` and ``&`` are
``\\u`` escapes, so the payload never ends its element nor holds markup; the
script only ever reads names from the parsed payload and shows them with
``textContent``. No name is ever part of code.

Layout is flamegraph.pl's: siblings in alphabetical order of function name,
children from the parent's left edge, the root ("all") at the bottom, or at
the top with ``inverted=True`` (an icicle of callers: the functions that ran
on top, their callers below). Frames narrower than ``min_width_px`` are left
out (their subtrees with them) and the graph says how many.

Colours say where the code lives: application (warm), standard library
(aqua; under ``sysconfig``'s stdlib paths or any ``lib/pythonX.Y/``), third
party (green; ``site-packages``/``dist-packages``) and native or unknown
(grey-violet; no file, ``<built-in>``, ``<frozen ...>``, compiled modules,
py-spy's native frames). The shade within a colour comes from the name.

Differential graphs (:func:`write_diff`) compare shares, not raw values:
each node's total is divided by its profile's total. Red: the node's share
grew in ``head``; blue: it shrank; the intensity grows with the change in
percentage points (relative to the largest change in the graph); exactly
unchanged shares stay neutral grey. Widths are the mean of both shares by
default (``widths="head"`` or ``"base"`` for one side), so code that vanished
or appeared stays visible.
"""

from __future__ import annotations

import json
import math
import operator
import re
import zlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import IO, Any

from ember import _impl
from ember.errors import FormatError
from ember.packages import APP, NATIVE, STDLIB, THIRD_PARTY, classify
from ember.profile import VALUE_KINDS, Frame, Profile

NAME = "svg"
EXTENSIONS = (".svg",)

FONT_SIZE = 12
FONT_WIDTH = 0.59
"""Average glyph width relative to the font size, for cutting labels to fit."""
FRAME_HEIGHT = 16
XPAD = 10

KINDS = (APP, STDLIB, THIRD_PARTY, NATIVE)

_NATIVE_NAME = re.compile(r"\((?:[^()]*/)?[^()/]*\.(?:so(?:\.[\d.]+)?|dylib|dll|pyd)\)$")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_SVG_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
                        rb"(?:<!DOCTYPE\s+svg|<svg[\s>])", re.DOTALL)


def sniff(head: bytes) -> bool:
    """An SVG document (so that reading one says why it cannot be read back)."""
    return _SVG_START.match(head) is not None


def read(stream: IO[bytes], path: str = "<stream>") -> Profile:
    raise FormatError("SVG flamegraphs cannot be read back; keep the profile in a data "
                      "format (.folded, .pprof, .json) and draw the SVG from it", path=path)


# -- classification and colours --------------------------------------------------------


def colour(kind: str, name: str) -> str:
    """A fill for a frame of this kind; the shade is a hash of the name."""
    h = zlib.crc32(name.encode("utf-8", "surrogatepass"))
    v1 = (h & 0xFFFF) / 0xFFFF
    v2 = (h >> 16) / 0xFFFF
    if kind == APP:  # flamegraph.pl's "hot"
        r, g, b = 205 + int(50 * v2), int(230 * v1), int(55 * v2)
    elif kind == STDLIB:  # aqua
        r, g, b = 50 + int(60 * v1), 165 + int(55 * v1), 200 + int(55 * v2)
    elif kind == THIRD_PARTY:  # green
        r, g, b = 50 + int(60 * v1), 190 + int(60 * v2), 50 + int(60 * v1)
    else:  # native / unknown: grey-violet
        r = g = 165 + int(40 * v1)
        b = min(255, r + 25)
    return f"rgb({r},{g},{b})"


ROOT_FILL = "rgb(200,200,200)"
DIFF_NEUTRAL = "rgb(225,225,225)"


def diff_colour(delta: float, max_delta: float) -> str:
    """Red where a share grew, blue where it shrank, neutral where it did not move."""
    if delta == 0 or max_delta <= 0:
        return DIFF_NEUTRAL
    t = min(1.0, math.sqrt(abs(delta) / max_delta))
    c = round(215 * (1.0 - t))
    return f"rgb(255,{c},{c})" if delta > 0 else f"rgb({c},{c},255)"


# -- text --------------------------------------------------------------------------------


def xml_text(text: str) -> str:
    """``text`` escaped for XML character data and attributes."""
    text = _XML_INVALID.sub("\ufffd", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def json_payload(data: object) -> str:
    """JSON that is inert inside XML and HTML: no ``<``, ``>`` or ``&`` characters."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _label(name: str, width_px: float) -> str:
    chars = int((width_px - 6) / (FONT_SIZE * FONT_WIDTH))
    if chars < 3:
        return ""
    return name if len(name) <= chars else name[: chars - 2] + ".."


def _formatter(value: str) -> Callable[[float], str]:
    if value == "samples":
        return lambda v: f"{v:,} samples"

    def seconds(v: float) -> str:
        return f"{v / 1e9:,.3f} s"
    return seconds


def _script() -> str:
    return resources.files("ember.formats").joinpath("flamegraph.js").read_text("utf-8")


# -- shared rendering -------------------------------------------------------------------


def _check_value(value: str) -> None:
    if value not in VALUE_KINDS:
        raise ValueError(f"unknown value kind {value!r}; expected one of {VALUE_KINDS}")


def _ranks(frames: Sequence[Frame]) -> list[int]:
    order = sorted(range(len(frames)), key=lambda f: frames[f])
    rank = [0] * len(frames)
    for r, f in enumerate(order):
        rank[f] = r
    return rank


def _render(
    stream: IO[bytes],
    *,
    frames: Sequence[Frame],
    node_frames: Sequence[int],
    depths: Sequence[int],
    xs: Sequence[float],
    ws: Sequence[float],
    fills: Sequence[str],
    titles: Sequence[str],
    title: str,
    subtitle: str | None,
    info: str,
    inverted: bool,
    width: int,
    payload: dict[str, Any],
) -> None:
    avail = width - 2 * XPAD
    max_depth = max(depths, default=0)
    top = FONT_SIZE * 3 + (20 if subtitle else 0) + 30
    bottom = FONT_SIZE * 2 + 14
    height = top + (max_depth + 1) * FRAME_HEIGHT + bottom

    used_ids: list[int] = []
    name_index: dict[int, int] = {}
    node_names = []
    for f in node_frames:
        idx = name_index.get(f)
        if idx is None:
            idx = name_index[f] = len(used_ids)
            used_ids.append(f)
        node_names.append(idx)
    used = [frames[f] if f >= 0 else Frame("all") for f in used_ids]
    payload.update(
        names=[fr.name for fr in used],
        files=[f"{fr.file}:{fr.line}" if fr.file else "" for fr in used],
        kinds=[classify(fr) if f >= 0 else "root" for f, fr in zip(used_ids, used, strict=True)],
        frame=node_names,
        depth=list(depths),
        inverted=inverted,
        width=width,
        xpad=XPAD,
        fontSize=FONT_SIZE,
        fontWidth=FONT_WIDTH,
    )

    out: list[str] = []
    w = out.append
    w('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n')
    w(f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
      f'xmlns="http://www.w3.org/2000/svg" class="ember-flamegraph">\n')
    w('<style type="text/css">'
      f"text {{ font-family: Verdana, sans-serif; font-size: {FONT_SIZE}px; fill: #000; }}"
      " #frames g:hover rect { stroke: #000; stroke-width: 0.5; cursor: pointer; }"
      " .button { cursor: pointer; fill: #333; } .button:hover { fill: #000; }"
      " #unzoom, #clear { opacity: 0; } #title { font-size: 17px; }"
      " #subtitle, #info { fill: #555; }"
      " .lbl { pointer-events: none; font-size: 12px; }"
      "</style>\n")
    w(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f4f4f0"/>\n')
    w(f'<text id="title" x="{width / 2:.0f}" y="{FONT_SIZE * 2}" text-anchor="middle">'
      f"{xml_text(title)}</text>\n")
    y = FONT_SIZE * 2 + 20
    if subtitle:
        w(f'<text id="subtitle" x="{width / 2:.0f}" y="{y}" text-anchor="middle">'
          f"{xml_text(subtitle)}</text>\n")
        y += 20
    w(f'<text id="info" x="{width / 2:.0f}" y="{y}" text-anchor="middle">'
      f"{xml_text(info)}</text>\n")
    y += 20
    w(f'<text id="unzoom" class="button" x="{XPAD}" y="{y}">Reset Zoom</text>\n')
    w(f'<text id="search" class="button" x="{width - XPAD}" y="{y}" '
      'text-anchor="end">Search</text>\n')
    w(f'<text id="clear" class="button" x="{width - XPAD - 60}" y="{y}" '
      'text-anchor="end">Clear</text>\n')
    w(f'<text id="details" x="{XPAD}" y="{height - bottom / 2:.0f}"> </text>\n')
    w(f'<text id="matched" x="{width - XPAD}" y="{height - bottom / 2:.0f}" '
      'text-anchor="end"> </text>\n')
    w('<g id="frames">\n')
    text_dy = FRAME_HEIGHT / 2 + 4
    min_label_px = 3 * FONT_SIZE * FONT_WIDTH + 6
    used_names = [fr.name for fr in used]
    rect_h = FRAME_HEIGHT - 1
    for i, depth in enumerate(depths):
        row = depth if inverted else max_depth - depth
        fy = top + row * FRAME_HEIGHT
        x = XPAD + xs[i] * avail
        wpx = ws[i] * avail
        label = (xml_text(_label(used_names[node_names[i]], wpx))
                 if wpx >= min_label_px else "")
        w(f'<g><title>{titles[i]}</title><rect x="{x:.2f}" y="{fy}" '
          f'width="{wpx:.2f}" height="{rect_h}" rx="2" fill="{fills[i]}"/>'
          f'<text class="lbl" x="{x + 3:.2f}" y="{fy + text_dy:.1f}">{label}</text>'
          "</g>\n")
    w("</g>\n")
    w('<script type="application/json" id="ember-data">')
    w(json_payload(payload))
    w("</script>\n")
    script = _script()
    if "]]>" in script:  # pragma: no cover - guarded for whoever edits the script
        raise AssertionError("flamegraph.js must not contain ']]>'")
    w('<script type="text/ecmascript"><![CDATA[\n')
    w(script)
    w("]]></script>\n</svg>\n")
    stream.write("".join(out).encode("utf-8", "surrogatepass"))


def _share(part: int, total: int) -> float:
    return part / total if total else 0.0


def write(
    profile: Profile,
    stream: IO[bytes],
    *,
    title: str | None = None,
    subtitle: str | None = None,
    inverted: bool = False,
    value: str = "samples",
    width: int = 1200,
    min_width_px: float = 0.1,
    **_: Any,
) -> None:
    """Write ``profile`` as an interactive flamegraph (icicle with ``inverted``)."""
    _check_value(value)
    flame = _impl.module("flame")
    per_stack: dict[int, int] = {}
    get = operator.attrgetter(value)
    for (sid, _labels), values in profile.values.items():
        per_stack[sid] = per_stack.get(sid, 0) + get(values)
    all_stacks = profile.stacks
    stacks = [all_stacks[s] for s in per_stack]
    weights = list(per_stack.values())
    total = sum(weights)
    avail = width - 2 * XPAD
    min_total = total * min_width_px / avail if total else 0
    tree = flame.fold(stacks, weights, _ranks(profile.frames), inverted, min_total)

    fmt = _formatter(value)
    per_frame: dict[int, tuple[str, str, str]] = {-1: ("all", ROOT_FILL, "")}
    fills, titles = [], []
    scale = 1 / total if total else 0.0
    xs = [start * scale for start in tree.starts]
    ws = [t * scale for t in tree.totals] if total else [1.0] * len(tree.totals)
    for f, t, own in zip(tree.frames, tree.totals, tree.selfs, strict=True):
        cached = per_frame.get(f)
        if cached is None:
            frame = profile.frames[f]
            kind = classify(frame)
            cached = per_frame[f] = (xml_text(frame.render()), colour(kind, frame.name),
                                     f"\n{kind}")
        fills.append(cached[1])
        titles.append(f"{cached[0]}\n{fmt(t)}, {t * scale:.2%} (self {fmt(own)}, "
                      f"{own * scale:.2%}){cached[2]}")
    info = (f"{fmt(total)} in {len(stacks):,} stacks; {len(tree.frames) - 1:,} frames drawn, "
            f"{tree.elided:,} narrower than {min_width_px:g} px elided")
    payload: dict[str, Any] = {
        "diff": False, "value": value, "total": total, "elided": tree.elided,
        "start": tree.starts, "totals": tree.totals, "self": tree.selfs,
        "minWidthPx": min_width_px,
    }
    _render(stream, frames=profile.frames, node_frames=tree.frames, depths=tree.depths,
            xs=xs, ws=ws, fills=fills, titles=titles,
            title=title if title is not None else ("Icicle Graph" if inverted else "Flame Graph"),
            subtitle=subtitle, info=info, inverted=inverted, width=width, payload=payload)


def write_diff(
    base: Profile,
    head: Profile,
    stream: IO[bytes],
    *,
    title: str | None = None,
    subtitle: str | None = None,
    value: str = "samples",
    inverted: bool = False,
    width: int = 1200,
    min_width_px: float = 0.1,
    widths: str = "mean",
    **_: Any,
) -> None:
    """A differential flamegraph from ``base`` to ``head``, normalised by their totals."""
    _check_value(value)
    mix = {"mean": 0.5, "base": 1.0, "head": 0.0}.get(widths)
    if mix is None:
        raise ValueError(f"widths must be 'mean', 'base' or 'head', not {widths!r}")
    frames: list[Frame] = []
    frame_ids: dict[Frame, int] = {}
    stack_ids: dict[tuple[int, ...], int] = {}
    stacks: list[tuple[int, ...]] = []
    channels: list[list[int]] = [[], []]
    for c, profile in enumerate((base, head)):
        fmap = []
        for frame in profile.frames:
            fid = frame_ids.get(frame)
            if fid is None:
                fid = frame_ids[frame] = len(frames)
                frames.append(frame)
            fmap.append(fid)
        for sid, v in profile.stack_values(value).items():
            key = tuple(fmap[f] for f in profile.stacks[sid])
            idx = stack_ids.get(key)
            if idx is None:
                idx = stack_ids[key] = len(stacks)
                stacks.append(key)
                channels[0].append(0)
                channels[1].append(0)
            channels[c][idx] += v
    tb, th = sum(channels[0]), sum(channels[1])
    avail = width - 2 * XPAD
    frac = min_width_px / avail
    # A drawn node is at least ``frac`` wide in the mix of both shares, so in one of them.
    min_b = tb * frac if tb else math.inf
    min_h = th * frac if th else math.inf
    tree = _impl.module("flame").fold_diff(stacks, channels[0], channels[1], _ranks(frames),
                                            inverted, min_b, min_h)

    fmt = _formatter(value)
    keep: list[int] = []
    xs: list[float] = []
    ws: list[float] = []
    deltas: list[float] = []
    for i in range(len(tree.frames)):
        sb, sh = _share(tree.base_totals[i], tb), _share(tree.head_totals[i], th)
        wfrac = mix * sb + (1 - mix) * sh
        if i and wfrac < frac:
            continue
        keep.append(i)
        xs.append(mix * _share(tree.base_starts[i], tb)
                  + (1 - mix) * _share(tree.head_starts[i], th))
        ws.append(wfrac if (tb or th) else 1.0)
        # exact sign from integers: head/th - base/tb
        num = tree.head_totals[i] * tb - tree.base_totals[i] * th
        deltas.append(0.0 if num == 0 else sh - sb)
    elided = tree.elided + len(tree.frames) - len(keep)
    max_delta = max((abs(d) for d in deltas), default=0.0)
    fills, titles = [], []
    for j, i in enumerate(keep):
        f = tree.frames[i]
        b, h = tree.base_totals[i], tree.head_totals[i]
        fills.append(diff_colour(deltas[j], max_delta))
        name = "all" if f < 0 else xml_text(frames[f].render())
        titles.append(f"{name}\nbase: {fmt(b)}, {_share(b, tb):.2%}\n"
                      f"head: {fmt(h)}, {_share(h, th):.2%}\n"
                      f"change: {100 * deltas[j]:+.2f} pp of the total"
                      + (f" (x{_share(h, th) / _share(b, tb):.2f})" if b and tb and h else ""))
    info = (f"base {fmt(tb)}, head {fmt(th)}; shares normalised by each total; red grew, "
            f"blue shrank; {len(keep) - 1:,} frames drawn, {elided:,} narrower than "
            f"{min_width_px:g} px elided")
    payload: dict[str, Any] = {
        "diff": True, "value": value, "total": th, "baseTotal": tb, "headTotal": th,
        "elided": elided, "mix": mix, "minWidthPx": min_width_px,
        "baseStart": [tree.base_starts[i] for i in keep],
        "baseTotals": [tree.base_totals[i] for i in keep],
        "headStart": [tree.head_starts[i] for i in keep],
        "headTotals": [tree.head_totals[i] for i in keep],
        "delta": [round(d, 9) for d in deltas],
    }
    _render(stream, frames=frames, node_frames=[tree.frames[i] for i in keep],
            depths=[tree.depths[i] for i in keep], xs=xs, ws=ws, fills=fills, titles=titles,
            title=title if title is not None else "Differential Flame Graph",
            subtitle=subtitle, info=info, inverted=inverted, width=width, payload=payload)
