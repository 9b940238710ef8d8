"""web.draw: DAG layout and SVG, the attempt timeline, duration text, and escaping of it all."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest

from cadenza.web.draw import Bar, Box, Layout, Node, dag_svg, duration_text, gantt_svg, layout

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "' onmouseover='",
    "a\x00b\x1bc",
    "&amp; ]]> <!-- -->",
]
BAD_HREFS = [
    "javascript:alert(1)",
    " javascript:alert(1)",
    "//evil.example/x",
    "/\\evil.example",
    "/\t/evil.example",
    "data:text/html,<script>alert(1)</script>",
    "",
]


def nodes(*ids: str) -> list[Node]:
    return [Node(i, i) for i in ids]


def tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def assert_inert(svg: str) -> ET.Element:
    root = parse(svg)
    for el in root.iter():
        assert tag(el) not in {"script", "foreignObject", "iframe", "img"}
        for name, value in el.attrib.items():
            assert not name.rsplit("}", 1)[-1].lower().startswith("on"), (name, value)
            if name.endswith("href"):
                assert value.startswith("/") and not value.startswith("//"), value
    return root


def assert_parents_first(lay: Layout) -> None:
    for a, b in lay.edges:
        if (a, b) not in lay.back_edges:
            assert lay.boxes[a].layer < lay.boxes[b].layer


def assert_no_overlap(lay: Layout) -> None:
    for layer in lay.layers:
        boxes = [lay.boxes[n] for n in layer]
        for one, two in itertools.pairwise(boxes):
            if lay.direction == "LR":
                assert one.x == two.x and one.y + one.height <= two.y
            else:
                assert one.y == two.y and one.x + one.width <= two.x


def assert_boxes_apart(lay: Layout) -> None:
    for one, two in itertools.combinations(lay.boxes.values(), 2):
        assert (
            one.x + one.width <= two.x
            or two.x + two.width <= one.x
            or one.y + one.height <= two.y
            or two.y + two.height <= one.y
        ), (one, two)


def inside(point: tuple[float, float], box: Box) -> bool:
    # Coordinates are written with one decimal, so allow half a pixel at the border.
    x, y = point
    return box.x + 0.5 < x < box.x + box.width - 0.5 and box.y + 0.5 < y < box.y + box.height - 0.5


def sample(d: str, steps: int = 24) -> list[tuple[float, float]]:
    """Points along an ``M``/``L``/``C`` path as dag_svg writes it."""
    points: list[tuple[float, float]] = []
    at = (0.0, 0.0)
    for cmd, args in re.findall(r"([MLC])([^MLC]*)", d):
        v = [float(a) for a in args.split()]
        ends = [at, *zip(v[::2], v[1::2], strict=True)]
        for i in range(steps + 1):
            t = i / steps
            if cmd == "L":
                (x0, y0), (x1, y1) = ends
                points.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
            elif cmd == "C":
                w = [(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3]
                x, y = zip(*ends, strict=True)
                points.append((sum(map(float.__mul__, w, x)), sum(map(float.__mul__, w, y))))
        at = ends[-1]
    return points


def assert_edges_avoid_boxes(
    ns: list[Node], edges: list[tuple[str, str]], direction: str
) -> Layout:
    """Each edge, as waypoints and as drawn, stays out of every box but its own two."""
    lay = layout(ns, edges, direction=direction)
    root = parse(dag_svg(ns, edges, direction=direction))
    paths = {
        (e.get("data-from"), e.get("data-to")): e.get("d", "")
        for e in root.iter()
        if e.get("class", "").startswith("edge")
    }
    assert set(paths) == set(lay.routes) == set(lay.edges)
    for (a, b), route in lay.routes.items():
        drawn = sample(paths[a, b])
        assert drawn[0] == pytest.approx(route[0], abs=0.1)
        assert drawn[-1] == pytest.approx(route[-1], abs=0.1)
        for n, box in lay.boxes.items():
            if n not in (a, b):
                assert not any(inside(p, box) for p in route), (a, b, n)
                assert not any(inside(p, box) for p in drawn), (a, b, n)
    return lay


# --- layout ---------------------------------------------------------------------------------


def test_chain_gets_one_layer_per_node() -> None:
    lay = layout(nodes("a", "b", "c"), [("a", "b"), ("b", "c")])
    assert lay.layers == (("a",), ("b",), ("c",))
    assert [lay.boxes[n].x for n in "abc"] == sorted(lay.boxes[n].x for n in "abc")
    assert_parents_first(lay)


def test_diamond() -> None:
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    lay = layout(nodes("a", "b", "c", "d"), edges)
    assert lay.layers == (("a",), ("b", "c"), ("d",))
    assert_parents_first(lay)
    assert_no_overlap(lay)


def test_layer_is_longest_path_from_a_source() -> None:
    edges = [("a", "b"), ("b", "c"), ("a", "c")]
    lay = layout(nodes("a", "b", "c"), edges)
    assert {n: lay.boxes[n].layer for n in "abc"} == {"a": 0, "b": 1, "c": 2}


def test_fan_out_and_in() -> None:
    mids = [f"m{i}" for i in range(10)]
    edges = [("src", m) for m in mids] + [(m, "sink") for m in mids]
    lay = layout(nodes("src", *mids, "sink"), edges)
    assert lay.layers == (("src",), tuple(mids), ("sink",))
    assert_parents_first(lay)
    assert_no_overlap(lay)
    # The lone source and sink are centred against the fan.
    ys = [lay.boxes[m].y + lay.boxes[m].height / 2 for m in mids]
    assert lay.boxes["src"].y + lay.boxes["src"].height / 2 == pytest.approx(sum(ys) / len(ys))


def test_barycenter_uncrosses_edges() -> None:
    # Input order puts x2 first, but its parent is a2, below a1: sweeping swaps them.
    edges = [("a1", "x1"), ("a2", "x2")]
    lay = layout(nodes("a1", "a2", "x2", "x1"), edges)
    assert lay.layers == (("a1", "a2"), ("x1", "x2"))


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_edge_skipping_a_layer_goes_round_the_box_between(direction: str) -> None:
    ids = ["extract", "validate", "approve_gate", "publish"]
    edges = [*itertools.pairwise(ids), ("validate", "publish")]
    lay = assert_edges_avoid_boxes(nodes(*ids), edges, direction)
    assert lay.layers == tuple((n,) for n in ids)
    gate, route = lay.boxes["approve_gate"], lay.routes["validate", "publish"]
    # Out of the validate box's far side, along a lane through the gate's layer, into publish.
    assert len(route) == 4
    lr = direction == "LR"
    source, target = lay.boxes["validate"], lay.boxes["publish"]
    assert route[0] == (
        (source.x + source.width, source.y + source.height / 2)
        if lr
        else (source.x + source.width / 2, source.y + source.height)
    )
    assert route[-1] == (
        (target.x, target.y + target.height / 2) if lr else (target.x + target.width / 2, target.y)
    )
    lane = [p[1] if lr else p[0] for p in route[1:3]]
    assert lane[0] == lane[1]
    low, high = (gate.y, gate.y + gate.height) if lr else (gate.x, gate.x + gate.width)
    assert not low <= lane[0] <= high
    assert_boxes_apart(lay)


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_long_edges_get_a_narrow_lane_in_each_layer_they_skip(direction: str) -> None:
    chain = ["a", "b", "c", "d", "e"]
    lay = assert_edges_avoid_boxes(
        nodes(*chain), [*itertools.pairwise(chain), ("a", "e"), ("b", "e")], direction
    )
    lr = direction == "LR"
    for a, skipped in [("a", "bcd"), ("b", "cd")]:
        route = lay.routes[a, "e"]
        assert len(route) == 2 + 2 * len(skipped)
        for n, enter, leave in zip(skipped, route[1:-1:2], route[2:-1:2], strict=True):
            box = lay.boxes[n]
            # The lane crosses the whole of that layer's depth, beside the layer's only box.
            if lr:
                assert (enter[0], leave[0]) == (box.x, box.x + box.width)
                assert enter[1] == leave[1] and not box.y <= enter[1] <= box.y + box.height
            else:
                assert (enter[1], leave[1]) == (box.y, box.y + box.height)
                assert enter[0] == leave[0] and not box.x <= enter[0] <= box.x + box.width
    # Both long edges pass c and d, each in its own lane.
    across = 1 if lr else 0
    assert lay.routes["a", "e"][3][across] != lay.routes["b", "e"][3][across]
    assert_boxes_apart(lay)
    assert_no_overlap(lay)
    # A lane is a narrow slot, not another box.
    plain = layout(nodes(*chain), list(itertools.pairwise(chain)), direction=direction)
    grown = lay.height - plain.height if lr else lay.width - plain.width
    assert 0 < grown <= 2 * 16


def test_back_edge_across_layers_takes_a_lane() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
    for direction in ("LR", "TB"):
        lay = assert_edges_avoid_boxes(nodes("a", "b", "c", "d"), edges, direction)
        assert len(lay.routes["c", "a"]) == 4


def test_random_dag_edges_avoid_boxes() -> None:
    ids = [f"t{i}" for i in range(30)]
    edges = [(ids[i], ids[j]) for i in range(30) for j in (2 * i + 1, 3 * i + 2, i + 7) if j < 30]
    for direction in ("LR", "TB"):
        lay = assert_edges_avoid_boxes(nodes(*ids), edges, direction)
        assert_boxes_apart(lay)
        assert_no_overlap(lay)


def test_top_down_makes_layers_rows() -> None:
    lay = layout(nodes("a", "b", "c"), [("a", "b"), ("a", "c")], direction="TB")
    assert lay.boxes["a"].y < lay.boxes["b"].y == lay.boxes["c"].y
    assert_no_overlap(lay)
    assert lay.width >= max(b.x + b.width for b in lay.boxes.values())
    assert lay.height >= max(b.y + b.height for b in lay.boxes.values())


def test_unknown_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="'RL'"):
        layout(nodes("a"), [], direction="RL")


def test_unknown_repeated_and_self_edges_are_dropped() -> None:
    edges = [("a", "b"), ("a", "b"), ("a", "ghost"), ("ghost", "b"), ("b", "b")]
    lay = layout([*nodes("a", "b"), Node("a", "again")], edges)
    assert lay.edges == (("a", "b"),)
    assert list(lay.boxes) == ["a", "b"]
    svg = dag_svg([*nodes("a", "b"), Node("a", "again")], edges)
    assert "ghost" not in svg and "again" not in svg


def test_cycle_is_broken_deterministically() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
    lay = layout(nodes("a", "b", "c", "d"), edges)
    assert lay.back_edges == {("c", "a")}
    assert lay.layers == (("a",), ("b",), ("c",), ("d",))
    assert_parents_first(lay)
    root = parse(dag_svg(nodes("a", "b", "c", "d"), edges))
    back = [e for e in root.iter() if e.get("class") == "edge back"]
    assert [(e.get("data-from"), e.get("data-to")) for e in back] == [("c", "a")]


def test_graph_that_is_all_cycle_still_lays_out() -> None:
    ids = [str(i) for i in range(50)]
    edges = [(a, b) for a in ids for b in ids if a != b]
    lay = layout(nodes(*ids), edges)
    assert sorted(lay.boxes) == sorted(ids)
    assert_parents_first(lay)


def test_long_chain_does_not_recurse() -> None:
    ids = [f"n{i}" for i in range(3000)]
    lay = layout(nodes(*ids), list(itertools.pairwise(ids)))
    assert lay.boxes["n2999"].layer == 2999


# --- dag_svg ----------------------------------------------------------------------------------


def test_empty_graph_draws_placeholder() -> None:
    root = parse(dag_svg([], []))
    assert "empty" in root.get("class", "")
    assert "Nothing to draw" in "".join(root.itertext())


def test_single_node() -> None:
    svg = dag_svg([Node("only", "Only", state="success", href="/tasks/only", detail="1.2 s")], [])
    root = assert_inert(svg)
    assert root.get("class") == "dag" and root.get("role") == "img" and root.get("aria-label")
    (g,) = [e for e in root.iter() if tag(e) == "g"]
    assert g.get("class") == "node state-success"
    assert g.get("data-node") == "only" and g.get("data-state") == "success"
    assert [e.get("href") for e in root.iter() if tag(e) == "a"] == ["/tasks/only"]
    assert [e.get("class") for e in g if tag(e) == "text"] == ["label", "detail"]
    w, h = root.get("viewBox", "").split()[2:]
    assert float(w) > 200 and float(h) > 48


def test_nodes_edges_and_marker() -> None:
    svg = dag_svg(nodes("a", "b"), [("a", "b")], direction="TB")
    root = parse(svg)
    (edge,) = [e for e in root.iter() if e.get("class") == "edge"]
    assert (edge.get("data-from"), edge.get("data-to")) == ("a", "b")
    assert edge.get("marker-end") == "url(#cadenza-arrow)"
    assert len([e for e in root.iter() if tag(e) == "marker"]) == 1
    assert "fill:" not in svg and "<style" not in svg


def test_long_label_is_clipped_with_full_title() -> None:
    label = "x" * 40
    root = parse(dag_svg([Node("n", label)], []))
    text = next(e for e in root.iter() if e.get("class") == "label")
    title = next(e for e in root.iter() if tag(e) == "title")
    assert text.text is not None and text.text.endswith("…") and len(text.text) == 28
    assert title.text == label


def test_unknown_states_get_class_none() -> None:
    root = parse(dag_svg([Node("a", "a"), Node("b", "b", state="Bad State!")], []))
    classes = [e.get("class") for e in root.iter() if tag(e) == "g"]
    assert classes == ["node state-none", "node state-none"]


def test_same_input_same_svg() -> None:
    ids = [f"t{i}" for i in range(30)]
    edges = [(ids[i], ids[j]) for i in range(30) for j in (2 * i + 1, 3 * i + 2) if j < 30]
    assert dag_svg(nodes(*ids), edges) == dag_svg(nodes(*ids), edges)
    assert str(dag_svg(nodes(*ids), edges)) == str(dag_svg(list(nodes(*ids)), list(edges)))


def test_thousand_node_fan_renders() -> None:
    mids = [f"m{i}" for i in range(1000)]
    edges = [("src", m) for m in mids] + [(m, "sink") for m in mids]
    all_nodes = [Node("src", "src", "success"), *nodes(*mids), Node("sink", "sink", "pending")]
    root = parse(dag_svg(all_nodes, edges))
    assert len([e for e in root.iter() if tag(e) == "g"]) == 1002
    assert len([e for e in root.iter() if e.get("class") == "edge"]) == 2000


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_graph_is_inert(text: str) -> None:
    hostile = [
        Node(text, text, state=text, href="/tasks/" + text, detail=text),
        Node("b" + text, text, state=text, href=text),
    ]
    root = assert_inert(dag_svg(hostile, [(text, "b" + text)]))
    g = next(e for e in root.iter() if tag(e) == "g")
    assert g.get("class") == "node state-none"
    assert g.get("data-node") == text.replace("\x00", "").replace("\x1b", "")


@pytest.mark.parametrize("href", BAD_HREFS)
def test_only_app_relative_links(href: str) -> None:
    root = assert_inert(dag_svg([Node("a", "a", href=href)], []))
    assert not [e for e in root.iter() if tag(e) == "a"]
    root = assert_inert(gantt_svg([Bar("a", 0, 1, "success", href=href)], now=1))
    assert not [e for e in root.iter() if tag(e) == "a"]


# --- gantt_svg --------------------------------------------------------------------------------


def bars_of(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if tag(e) == "rect"]


def ticks_of(root: ET.Element) -> list[str]:
    return [
        "".join(t.itertext())
        for g in root.iter()
        if g.get("class") == "tick"
        for t in g
        if tag(t) == "text"
    ]


def test_empty_gantt() -> None:
    root = parse(gantt_svg([]))
    assert "no attempts yet" in "".join(root.itertext())


def test_attempts_share_a_row_in_first_appearance_order() -> None:
    bars = [
        Bar("load", 100, 102, "up_for_retry", label="attempt 1 · up_for_retry · 2.0 s"),
        Bar("train", 103, 108, "success", critical=True, href="/runs/1/train"),
        Bar("load", 102.5, 103, "success"),
    ]
    root = assert_inert(gantt_svg(bars, now=200))
    labels = [e for e in root.iter() if e.get("class") == "row-label"]
    assert [e[0].tail for e in labels] == ["load", "train"]  # the text after each <title>
    rects = bars_of(root)
    assert rects[0].get("y") == rects[2].get("y") != rects[1].get("y")
    assert float(rects[0].get("x", 0)) < float(rects[2].get("x", 0))
    assert rects[1].get("class") == "bar state-success critical"
    assert rects[0].findtext("{*}title") == "attempt 1 · up_for_retry · 2.0 s"
    assert rects[2].findtext("{*}title") == "load · success · 500 ms"


def test_running_bar_reaches_now() -> None:
    bars = [Bar("a", 0, 10, "success"), Bar("b", 10, None, "running")]
    root = parse(gantt_svg(bars, now=30))
    done, running = bars_of(root)
    assert running.get("class") == "bar state-running running"
    assert float(running.get("x", 0)) + float(running.get("width", 0)) == pytest.approx(168 + 720)
    assert float(done.get("width", 0)) == pytest.approx(720 / 3)


def test_running_bar_uses_the_clock_without_now() -> None:
    root = parse(gantt_svg([Bar("a", 0, None, "running")]))
    assert float(bars_of(root)[0].get("width", 0)) == pytest.approx(720)


def test_zero_length_bars_stay_visible() -> None:
    bars = [Bar("a", 5, 5, "success"), Bar("b", 5, 9, "failed"), Bar("c", 9, 8, "failed")]
    rects = bars_of(parse(gantt_svg(bars, now=9)))
    assert float(rects[0].get("width", 0)) == 2
    assert float(rects[2].get("width", 0)) == 2


def test_single_instant_bar() -> None:
    root = parse(gantt_svg([Bar("a", 5, 5, "cached")], now=5))
    assert 4 <= len(ticks_of(root)) <= 8


def test_many_rows() -> None:
    bars = [Bar(f"task[{i}]", i, i + 1.5, "success") for i in range(300)]
    root = parse(gantt_svg(bars, now=0))
    ys = {e.get("y") for e in bars_of(root)}
    assert len(ys) == 300
    assert float(root.get("height", 0)) > 300 * 20


@pytest.mark.parametrize(
    ("span", "first_ticks"),
    [
        (0.004, ["0", "2 ms", "4 ms"]),
        (0.3, ["0", "50 ms", "100 ms"]),
        (1.7, ["0", "0.5 s", "1.0 s"]),
        (12, ["0", "2 s", "4 s"]),
        (95, ["0", "20 s", "40 s"]),
        (400, ["0", "1 min", "2 min"]),
        (5000, ["0", "20 min", "40 min"]),
        (30000, ["0", "2 h", "4 h"]),
        (3e6, ["0", "200 h", "400 h"]),
        (4e8, ["0", "20000 h", "40000 h"]),
    ],
)
def test_ticks_are_nice_and_few(span: float, first_ticks: list[str]) -> None:
    ticks = ticks_of(parse(gantt_svg([Bar("a", 1000, 1000 + span, "success")], now=0)))
    assert 4 <= len(ticks) <= 8
    assert ticks[:3] == first_ticks


@pytest.mark.parametrize("span", [0.01 * 1.37**k for k in range(70)])
def test_tick_count_for_any_span(span: float) -> None:
    ticks = ticks_of(parse(gantt_svg([Bar("a", 0, span, "success")], now=0)))
    assert 4 <= len(ticks) <= 8


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_gantt_is_inert(text: str) -> None:
    bars = [Bar(text, 0, 1, text, href="/x/" + text, label=text), Bar(text, 1, None, text)]
    root = assert_inert(gantt_svg(bars, now=2))
    assert all(e.get("class", "").startswith("bar state-none") for e in bars_of(root))


# --- duration_text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (float("nan"), "—"),
        (-1, "0 ms"),
        (0, "0 ms"),
        (0.85, "850 ms"),
        (0.9996, "1.0 s"),
        (3.24, "3.2 s"),
        (59.96, "1 min 00 s"),
        (245, "4 min 05 s"),
        (3599.6, "1 h 00 min"),
        (2 * 3600 + 3 * 60 + 10, "2 h 03 min"),
        (30 * 3600, "30 h 00 min"),
    ],
)
def test_duration_text(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text
