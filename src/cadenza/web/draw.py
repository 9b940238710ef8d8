"""Server-side SVG for the web UI: a pipeline as a layered graph, a run's attempts as a timeline.

Everything is drawn with classes only, so the page's stylesheet owns colour: ``svg.dag`` holds
``g.node.state-<state>`` (a ``rect``, ``text.label``, optional ``text.detail``), ``path.edge``
(``.back`` when it closes a cycle) and ``path.arrowhead``; an edge that skips layers runs in a
narrow lane of its own through each of them (Sugiyama's dummy nodes), never through a box.
``svg.gantt`` holds ``g.tick``, ``text.row-label`` and ``rect.bar.state-<state>`` (plus
``.critical`` and ``.running``); ``svg.empty`` is the placeholder for nothing to draw. Every
user-supplied string is escaped, and links are emitted only for app-relative URLs.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeAlias

from markupsafe import Markup, escape

from cadenza._words import plural

_STATE = re.compile(r"[a-z_]+")
# App-relative URLs only. Browsers read "//host" and "/\host" as another site, and they drop
# tabs and newlines from URLs, so "/\t/host" would become one: refuse controls and backslashes.
_HREF = re.compile(r"/(?![/\\])[^\x00-\x1f\x7f\\]*")
# Characters XML forbids: one in a task name would make the whole SVG unparseable.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_NODE_W, _NODE_H = 200.0, 48.0
_PAD, _GAP_SIBLING = 16.0, 16.0
_LANE = 14.0  # breadth of a long edge's slot in each layer it passes through
# Past this many lanes the longest edges go straight: a graph that dense is unreadable anyway,
# and a 50-node clique would otherwise need 39,000 lanes and seconds to lay out.
_LANES_MAX = 1000
_GAP_LAYER = {"LR": 64.0, "TB": 48.0}
_LABEL_MAX, _DETAIL_MAX, _ROW_LABEL_MAX = 28, 32, 24
_SWEEPS = 4
# The graph box of a page at 1280x800 (cadenza.css: svg.dag's max-height is 60vh): "auto"
# picks the shape that shows the graph largest in it, and folds a long chain into bands only
# when that shows it at least _WRAP_GAIN times larger than one row or column would.
_FIT_W, _FIT_H, _WRAP_GAIN = 1200.0, 480.0, 1.25
_GAP_BAND = 40.0  # between two bands of a wrapped graph: the edges from one to the next run here
_ARROW = "cadenza-arrow"

_LABEL_COL, _PLOT_W, _AXIS_H, _ROW_H, _BAR_H = 168.0, 720.0, 24.0, 24.0, 16.0
# 1-2-5 steps, then whole minutes and hours. No step is more than 2.5x the one before, so the
# first giving fewer than 8 intervals gives at least 3.2: always 4 to 8 tick labels.
_STEPS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30,
    60, 120, 300, 600, 1200, 1800,
    *(m * 3600 * 10**k for k in range(6) for m in (1, 2, 5)),
)


@dataclass(frozen=True, slots=True)
class Node:
    """One box in the graph."""

    id: str
    """Unique key: a task name or an artifact hash."""
    label: str
    """Text shown; clipped with an ellipsis past 28 characters, in full in the tooltip."""
    state: str = ""
    """Task state such as ``"success"``; ``""`` when it never ran."""
    href: str | None = None
    """Where a click goes; ignored unless it is an app-relative URL starting with ``/``."""
    detail: str = ""
    """An optional second, smaller line."""


@dataclass(frozen=True, slots=True)
class Box:
    """Where one node sits: top-left corner, size, and its layer (0 for sources)."""

    x: float
    y: float
    width: float
    height: float
    layer: int


@dataclass(frozen=True, slots=True)
class Layout:
    """Positions for a graph, separate from drawing so tests can check the structure."""

    boxes: Mapping[str, Box]
    """Node id to box, in input order; a repeated id keeps its first node."""
    layers: tuple[tuple[str, ...], ...]
    """Node ids per layer, in drawing order."""
    edges: tuple[tuple[str, str], ...]
    """Edges between known nodes, without repeats or self-loops."""
    back_edges: frozenset[tuple[str, str]]
    """Edges ignored for layering because they close a cycle."""
    width: float
    height: float
    direction: str
    routes: Mapping[tuple[str, str], tuple[tuple[float, float], ...]]
    """Edge to the points its path goes through: from the side of its source box, two per layer
    it crosses (where its lane enters and leaves that layer), to the side of its target box;
    where it passes from one band to the next, four more (out, down, back, down)."""
    bands: int = 1
    """Rows the layers are wrapped into (left to right only): 1 unless a long chain was folded
    so that the graph fits a page."""


# A node id, or (from, to, layer) for the lane an edge takes through a layer it skips.
_Slot: TypeAlias = str | tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Bar:
    """One attempt on the timeline."""

    row: str
    """Row label; attempts of one task share its row."""
    start: float
    """Epoch seconds."""
    end: float | None
    """Epoch seconds, or None while running (drawn up to ``now``)."""
    state: str
    href: str | None = None
    label: str = ""
    """Tooltip; a row · state · duration line when empty."""
    critical: bool = False
    """On the run's critical path."""


def layout(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, direction: str = "LR"
) -> Layout:
    """Longest-path layers, ordered by barycenter sweeps; ``direction`` is "LR", "TB" or
    "auto": whichever of left to right, top down, or left to right wrapped into bands (a long
    chain folded like lines of text) fits a page's graph box best (see `_shape`)."""
    if direction not in (*_GAP_LAYER, "auto"):
        raise ValueError(
            f"direction {direction!r} is not known; use 'LR' (left to right), 'TB' (top down)"
            " or 'auto' (the one that fits a page best)"
        )
    ids = list(dict.fromkeys(n.id for n in nodes))
    known = set(ids)
    kept = [(a, b) for a, b in dict.fromkeys(edges) if a in known and b in known and a != b]
    depth, back = _layers(ids, kept)
    layers: list[list[_Slot]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in ids:
        layers[depth[n]].append(n)
    parents: dict[_Slot, list[_Slot]] = {n: [] for n in ids}
    children: dict[_Slot, list[_Slot]] = {n: [] for n in ids}
    # A lane in each layer an edge skips gives it a place of its own there. Shortest edges
    # first, so the budget fixes as many as it can.
    lanes: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    budget = _LANES_MAX
    for a, b in sorted(kept, key=lambda e: abs(depth[e[0]] - depth[e[1]])):
        skipped = range(min(depth[a], depth[b]) + 1, max(depth[a], depth[b]))
        if len(skipped) > budget:
            break
        budget -= len(skipped)
        lanes[a, b] = [(a, b, d) for d in skipped]
    for a, b in kept:
        if depth[a] == depth[b]:
            continue  # a back edge within one layer: nothing to order it by
        # Order every edge from its upper end down, back edges too; lanes follow the nodes.
        up, down = (a, b) if depth[a] < depth[b] else (b, a)
        for lane in lanes.get((a, b), []):
            layers[lane[2]].append(lane)
            parents[lane], children[lane] = [], []
        chain: list[_Slot] = [up, *lanes.get((a, b), []), down]
        for u, v in pairwise(chain):
            parents[v].append(u)
            children[u].append(v)
    _order(layers, parents, children)

    if direction == "auto":
        direction, per_band = _shape(layers)
    else:
        per_band = max(len(layers), 1)
    lr = direction == "LR"
    if back:
        per_band = max(len(layers), 1)  # a wrapped cycle would run its back edges uphill
    main, cross = (_NODE_W, _NODE_H) if lr else (_NODE_H, _NODE_W)
    step = main + _GAP_LAYER[direction]

    def size(slot: _Slot) -> float:
        return cross + _GAP_SIBLING if isinstance(slot, str) else _LANE

    totals = [sum(map(size, layer)) for layer in layers]
    widest = max(totals, default=0.0)
    centre: dict[_Slot, float] = {}
    for layer, total in zip(layers, totals, strict=True):
        # Centre each layer across the widest one so a lone sink sits opposite its fan.
        at = _PAD - _GAP_SIBLING / 2 + (widest - total) / 2
        for slot in layer:
            centre[slot] = at + size(slot) / 2
            at += size(slot)
    breadth = widest - _GAP_SIBLING + 2 * _PAD
    bands = max(1, math.ceil(len(layers) / per_band))

    def point(depth_: int, along: float, across: float) -> tuple[float, float]:
        """``along`` from the near side of layer ``depth_``; a wrapped layer goes to its band."""
        band, column = divmod(depth_, per_band)
        along += _PAD + column * step
        across += band * (breadth + _GAP_BAND)
        return (along, across) if lr else (across, along)

    placed: dict[str, Box] = {}
    for n in ids:
        x, y = point(depth[n], 0.0, centre[n] - cross / 2)
        placed[n] = Box(x, y, _NODE_W, _NODE_H, depth[n])
    routes: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {}
    for a, b in kept:
        # Down the layers an edge leaves its source's far side and enters its target's near
        # side; otherwise (a back edge) the reverse, so it does not loop round either box.
        fwd = depth[a] < depth[b]
        stops = [(depth[a], main if fwd else 0.0, centre[a])]
        mine = lanes.get((a, b), [])
        for lane in mine if fwd else mine[::-1]:
            ends = (0.0, main) if fwd else (main, 0.0)
            stops.extend((lane[2], along, centre[lane]) for along in ends)
        stops.append((depth[b], 0.0 if fwd else main, centre[b]))
        path: list[tuple[float, float]] = []
        for i, (d, along, across) in enumerate(stops):
            here = point(d, along, across)
            if path and d // per_band != stops[i - 1][0] // per_band:
                path.extend(_wrap(path[-1], here, stops[i - 1][2], breadth))
            path.append(here)
        routes[a, b] = tuple(path)
    length = min(len(layers), per_band) * step - _GAP_LAYER[direction] + 2 * _PAD
    breadth_all = bands * breadth + (bands - 1) * _GAP_BAND
    return Layout(
        boxes={n: placed[n] for n in ids},
        layers=tuple(tuple(n for n in layer if isinstance(n, str)) for layer in layers),
        edges=tuple(kept),
        back_edges=frozenset(back),
        width=length if lr else breadth_all,
        height=breadth_all if lr else length,
        direction=direction,
        routes=routes,
        bands=bands,
    )


def _shape(layers: list[list[_Slot]]) -> tuple[str, int]:
    """The direction, and layers per band, that show ``layers`` largest in the page's graph
    box (never above their natural size)."""
    count = len(layers)
    if not count:
        return "LR", 1

    def breadth(cross: float) -> float:
        return max(
            sum(cross + _GAP_SIBLING if isinstance(s, str) else _LANE for s in layer)
            for layer in layers
        ) - _GAP_SIBLING + 2 * _PAD

    def length(n: int, direction: str) -> float:
        main = _NODE_W if direction == "LR" else _NODE_H
        return n * (main + _GAP_LAYER[direction]) - _GAP_LAYER[direction] + 2 * _PAD

    def fit(width: float, height: float) -> float:
        return min(_FIT_W / width, _FIT_H / height, 1.0)

    across_lr, across_tb = breadth(_NODE_H), breadth(_NODE_W)
    lr, tb = fit(length(count, "LR"), across_lr), fit(across_tb, length(count, "TB"))
    best = ("LR", count) if lr >= tb else ("TB", count)
    wrapped, scale = count, 0.0
    for per_band in range(count - 1, 1, -1):  # fewest bands first: they win ties
        bands = math.ceil(count / per_band)
        this = fit(length(per_band, "LR"), bands * across_lr + (bands - 1) * _GAP_BAND)
        if this > scale:
            wrapped, scale = per_band, this
    return ("LR", wrapped) if scale > max(lr, tb) * _WRAP_GAIN else best


def _wrap(
    leave: tuple[float, float], enter: tuple[float, float], across: float, breadth: float
) -> list[tuple[float, float]]:
    """The corners of an edge going from one band to the next, all in gaps between boxes: out
    of ``leave`` a little, down into the gap under its band (at a height of its own, from
    ``across``, its place in the band), back along it, and down to ``enter``."""
    (x1, y1), (x2, y2) = leave, enter
    gap_y = y1 - across + breadth + _GAP_BAND * (0.25 + 0.5 * min(max(across / breadth, 0), 1))
    out, back = x1 + _PAD / 2, x2 - _PAD / 2
    return [(out, y1), (out, gap_y), (back, gap_y), (back, y2)]


def _layers(
    ids: list[str], edges: list[tuple[str, str]]
) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Kahn's algorithm, each node one layer past its deepest parent; cycles are broken."""
    parents: dict[str, list[str]] = {n: [] for n in ids}
    children: dict[str, list[str]] = {n: [] for n in ids}
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)
    waiting = {n: len(parents[n]) for n in ids}
    ready = deque(n for n in ids if not waiting[n])
    depth: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    first = 0
    while len(depth) < len(ids):
        if not ready:
            # Everything left waits on a cycle. Start from the first such node in input order
            # and call its unplaced parents' edges back edges: deterministic, never hash order.
            while ids[first] in depth:
                first += 1
            node = ids[first]
            back.update((p, node) for p in parents[node] if p not in depth)
            ready.append(node)
        node = ready.popleft()
        depth[node] = 1 + max(
            (depth[p] for p in parents[node] if (p, node) not in back), default=-1
        )
        for child in children[node]:
            if child not in depth:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
    return depth, back


def _order(
    layers: list[list[_Slot]],
    parents: dict[_Slot, list[_Slot]],
    children: dict[_Slot, list[_Slot]],
) -> None:
    """Reorder each layer in place towards its neighbours' mean position, down then up."""
    pos: dict[_Slot, float] = {}
    for layer in layers:
        _sort(layer, {}, pos)
    for _ in range(_SWEEPS):
        for layer in layers[1:]:
            _sort(layer, parents, pos)
        for layer in reversed(layers[:-1]):
            _sort(layer, children, pos)


def _sort(
    layer: list[_Slot], neighbours: Mapping[_Slot, list[_Slot]], pos: dict[_Slot, float]
) -> None:
    def key(n: _Slot) -> float:
        near = neighbours.get(n)
        return sum(pos[m] for m in near) / len(near) if near else pos.get(n, 0.0)

    layer.sort(key=key)  # stable: ties keep their current order, which began as input order
    # Positions as fractions of the layer, so layers of different sizes compare.
    for i, n in enumerate(layer):
        pos[n] = (i + 0.5) / len(layer)


def dag_svg(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, direction: str = "LR"
) -> Markup:
    """The graph as an ``<svg class="dag">``; edges to unknown nodes are left out."""
    lay = layout(nodes, edges, direction=direction)
    if not lay.boxes:
        return _placeholder("dag", "Nothing to draw")
    first: dict[str, Node] = {}
    for node in nodes:
        first.setdefault(node.id, node)
    parts = [
        _open("dag", lay.width, lay.height, f"Task graph of {plural(len(lay.boxes), 'task')}",
              ' preserveAspectRatio="xMidYMid meet"'),
        f'<defs><marker id="{_ARROW}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto"><path class="arrowhead" d="M0 0L10 5L0 10z"/>'
        "</marker></defs>",
    ]
    parts.extend(_edge(lay, a, b) for a, b in lay.edges)  # before nodes, so nodes cover them
    parts.extend(_node(first[n], lay.boxes[n]) for layer in lay.layers for n in layer)
    parts.append("</svg>")
    return Markup("".join(parts))


# The order states are listed in a legend: as a run goes, then the rest; "" (never ran) last.
_LEGEND = (
    "success", "failed", "running", "queued", "up_for_retry", "upstream_failed", "skipped",
    "awaiting_approval", "waiting", "cached", "cancelled", "interrupted", "pending",
)


def dag_figure(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str]],
    *,
    labels: Mapping[str, str] | None = None,
) -> Markup:
    """The graph for a page: a ``<figure class="dag-box">`` holding `dag_svg` in the shape that
    fits the page best (see `layout`'s "auto"), sized to its box by its viewBox, and a legend of
    the states its nodes are in (``labels`` renames states, e.g. for lineage). The page's
    script adds zoom and pan; without it the graph is still whole and fitted."""
    svg = dag_svg(nodes, edges, direction="auto")
    return Markup(
        f'<figure class="dag-box" data-zoom="">{svg}{dag_legend(nodes, labels=labels)}</figure>'
    )


def dag_legend(nodes: Sequence[Node], *, labels: Mapping[str, str] | None = None) -> Markup:
    """A ``<ul class="legend">``: one ``li[data-state]`` with a coloured square per state shown."""
    shown = {_state(n.state) if n.state else "none" for n in nodes}
    order = [*_LEGEND, *sorted(shown - {*_LEGEND, "none"}), "none"]
    items = []
    for state in order:
        if state not in shown:
            continue
        raw = "" if state == "none" else state
        text = (labels or {}).get(raw) or (raw.replace("_", " ") if raw else "never ran")
        items.append(
            f'<li data-state="{_esc(raw)}"><span class="sq state-{state}"></span>'
            f"{_esc(text)}</li>"
        )
    return Markup(f'<ul class="legend" aria-label="Colours of states">{"".join(items)}</ul>')


def _edge(lay: Layout, a: str, b: str) -> str:
    # Curves between layers, leaving and entering along the layer axis; straight within a lane.
    points = lay.routes[a, b]
    d = f"M{_n(points[0][0])} {_n(points[0][1])}"
    for (x1, y1), (x2, y2) in pairwise(points):
        if x1 == x2 or y1 == y2:  # along a lane, or a wrapped edge's corner
            d += f"L{_n(x2)} {_n(y2)}"
        elif lay.direction == "LR":
            mid = (x1 + x2) / 2
            d += f"C{_n(mid)} {_n(y1)} {_n(mid)} {_n(y2)} {_n(x2)} {_n(y2)}"
        else:
            mid = (y1 + y2) / 2
            d += f"C{_n(x1)} {_n(mid)} {_n(x2)} {_n(mid)} {_n(x2)} {_n(y2)}"
    back = (a, b) in lay.back_edges
    # fill="none" is geometry, not colour: without it a curve is drawn as a filled blob.
    return (
        f'<path class="edge{" back" if back else ""}" data-from="{_esc(a)}" data-to="{_esc(b)}"'
        f' d="{d}" fill="none" marker-end="url(#{_ARROW})"/>'
    )


def _node(node: Node, box: Box) -> str:
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    parts = [
        f'<g class="node state-{_state(node.state)}" data-node="{_esc(node.id)}"'
        f' data-state="{_esc(node.state)}"><title>{_esc(node.label)}</title>'
        f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.width)}"'
        f' height="{_n(box.height)}" rx="6"/>',
        _text("label", cx, cy - 8 if node.detail else cy, _clip(node.label, _LABEL_MAX)),
    ]
    if node.detail:
        parts.append(_text("detail", cx, cy + 10, _clip(node.detail, _DETAIL_MAX)))
    parts.append("</g>")
    return _link(node.href, "".join(parts))


def gantt_svg(bars: Sequence[Bar], *, now: float | None = None) -> Markup:
    """Attempts on a shared time axis, one row per distinct ``row`` in order of appearance."""
    if not bars:
        return _placeholder("gantt", "no attempts yet")
    now = time.time() if now is None else now
    ends = [max(b.start, now if b.end is None else b.end) for b in bars]
    t0 = min(b.start for b in bars)
    span = max(max(ends) - t0, 0.01)  # a floor, so an instant run still gets an axis
    step = next((s for s in _STEPS if span / s < 8), span / 4)
    rows = {row: i for i, row in enumerate(dict.fromkeys(b.row for b in bars))}
    scale = _PLOT_W / span
    height = _AXIS_H + len(rows) * _ROW_H + _PAD
    label = f"Timeline of {plural(len(bars), 'attempt')} in {plural(len(rows), 'row')}"
    parts = [_open("gantt", _LABEL_COL + _PLOT_W + 2 * _PAD, height, label)]
    for k in range(math.floor(span / step + 1e-9) + 1):
        x = _n(_LABEL_COL + k * step * scale)
        parts.append(
            f'<g class="tick"><line x1="{x}" x2="{x}" y1="{_n(_AXIS_H - 4)}" y2="{_n(height)}"/>'
            f'<text x="{x}" y="12" text-anchor="middle">{_tick_text(k * step, step)}</text></g>'
        )
    for row, i in rows.items():
        parts.append(
            f'<text class="row-label" x="4" y="{_n(_AXIS_H + (i + 0.5) * _ROW_H)}"'
            ' dominant-baseline="central">'
            f"<title>{_esc(row)}</title>{_esc(_clip(row, _ROW_LABEL_MAX))}</text>"
        )
    for bar, end in zip(bars, ends, strict=True):
        cls = f"bar state-{_state(bar.state)}"
        cls += (" critical" if bar.critical else "") + (" running" if bar.end is None else "")
        took = duration_text(end - bar.start)
        tip = bar.label or f"{bar.row} · {bar.state or 'not run'} · {took}"
        y = _AXIS_H + rows[bar.row] * _ROW_H + (_ROW_H - _BAR_H) / 2
        rect = (
            f'<rect class="{cls}" data-row="{_esc(bar.row)}"'
            f' x="{_n(_LABEL_COL + (bar.start - t0) * scale)}" y="{_n(y)}"'
            f' width="{_n(max(2.0, (end - bar.start) * scale))}" height="{_n(_BAR_H)}" rx="2">'
            f"<title>{_esc(tip)}</title></rect>"
        )
        parts.append(_link(bar.href, rect))
    parts.append("</svg>")
    return Markup("".join(parts))


def _tick_text(value: float, step: float) -> str:
    if value == 0:
        return "0"
    if step < 0.1:
        return f"{value * 1000:.0f} ms"
    if step < 1:
        return f"{value:.1f} s"
    if step < 60:
        return f"{value:.0f} s"
    if step < 3600:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.0f} h"


def duration_text(seconds: float | None) -> str:
    """'—', '850 ms', '3.2 s', '4 min 05 s' or '2 h 03 min'; negative clock skew reads as 0."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(seconds, 0.0)
    # Each branch checks the rounded value, so 59.96 s reads "1 min 00 s", not "60.0 s".
    if (ms := round(seconds * 1000)) < 1000:
        return f"{ms} ms"
    if (tenths := round(seconds * 10)) < 600:
        return f"{tenths / 10:.1f} s"
    if (whole := round(seconds)) < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _open(cls: str, width: float, height: float, label: str, extra: str = "") -> str:
    w, h = _n(width), _n(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" role="img"'
        f' aria-label="{_esc(label)}" viewBox="0 0 {w} {h}" width="{w}" height="{h}"{extra}>'
    )


def _placeholder(cls: str, message: str) -> Markup:
    return Markup(_open(f"{cls} empty", 240, 40, message) + _text("", 120, 20, message) + "</svg>")


def _text(cls: str, x: float, y: float, content: str) -> str:
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<text{attr} x="{_n(x)}" y="{_n(y)}" text-anchor="middle"'
        f' dominant-baseline="central">{_esc(content)}</text>'
    )


def _link(href: str | None, inner: str) -> str:
    if href is None or not _HREF.fullmatch(href):
        return inner
    return f'<a href="{_esc(href)}">{inner}</a>'


def _esc(value: str) -> str:
    return str(escape(_NOT_XML.sub("", value)))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _state(state: str) -> str:
    return state if _STATE.fullmatch(state) else "none"


def _n(value: float) -> str:
    """A coordinate with at most one decimal and no exponent."""
    return f"{value:.1f}".removesuffix(".0")
