"""web.draw's "auto" shape: a graph is laid out to fit a page's graph box (issue 16, part 4).

A long chain is folded into bands read left to right then down, a wide shallow graph stays one
row, a tall narrow one may go top down; in every shape no two boxes overlap, each edge goes
from a layer to a later one and stays out of every other box, and the legend lists the states
shown."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from tests.web.test_draw import assert_boxes_apart, assert_edges_avoid_boxes, nodes

from cadenza.web.draw import Layout, Node, dag_figure, dag_legend, layout

CHURN = ["land", "ingest", "store_raw", "validate", "prepare", "transform", "feature_store",
         "train", "evaluate", "promote_gate", "promote"]
CHURN_EDGES = [*itertools.pairwise(CHURN), ("land", "store_raw"), ("transform", "train"),
               ("train", "promote"), ("evaluate", "promote")]
BOX_W, BOX_H = 1200, 480  # the page's graph box that "auto" aims at


def scale(width: float, height: float) -> float:
    return min(BOX_W / width, BOX_H / height, 1.0)


def assert_layers_forward(lay: Layout) -> None:
    for a, b in lay.edges:
        assert lay.boxes[a].layer < lay.boxes[b].layer, (a, b)
    # A layer's boxes share one column (LR) or row (TB) within their band.
    for layer in lay.layers:
        spots = {(lay.boxes[n].x if lay.direction == "LR" else lay.boxes[n].y) for n in layer}
        assert len(spots) == 1, layer


def test_a_long_chain_is_folded_into_bands_that_fit_the_box() -> None:
    lay = assert_edges_avoid_boxes(nodes(*CHURN), CHURN_EDGES, "auto")
    assert lay.direction == "LR" and lay.bands == 3
    assert lay.width <= BOX_W and lay.height <= BOX_H  # natural size: no shrinking at all
    assert_boxes_apart(lay)
    assert_layers_forward(lay)
    # Read like text: along a band left to right, the next band below the last.
    for a, b in itertools.pairwise(CHURN):
        one, two = lay.boxes[a], lay.boxes[b]
        assert one.x < two.x or one.y + one.height < two.y, (a, b)
    # One row would be 2,872 px wide, shown at under half size.
    row = layout(nodes(*CHURN), CHURN_EDGES, direction="LR")
    assert row.width > 2800 and scale(row.width, row.height) < 0.5


def test_an_edge_to_the_next_band_turns_in_the_gaps() -> None:
    lay = layout(nodes(*CHURN), CHURN_EDGES, direction="auto")
    route = lay.routes["validate", "prepare"]
    source, target = lay.boxes["validate"], lay.boxes["prepare"]
    assert route[0] == (source.x + source.width, source.y + source.height / 2)
    assert route[-1] == (target.x, target.y + target.height / 2)
    # Out to the right, down under the band, back to the left, down to the target: square
    # corners, each leg straight.
    assert len(route) == 6
    for (x1, y1), (x2, y2) in itertools.pairwise(route):
        assert x1 == x2 or y1 == y2
    gap_y = route[2][1]
    assert max(b.y + b.height for n, b in lay.boxes.items() if b.layer < 4) < gap_y < target.y


def test_a_wide_shallow_graph_stays_one_row() -> None:
    ids = ["src", *(f"part{i}" for i in range(12)), "sink"]
    edges = [("src", p) for p in ids[1:-1]] + [(p, "sink") for p in ids[1:-1]]
    lay = assert_edges_avoid_boxes(nodes(*ids), edges, "auto")
    assert lay.bands == 1
    assert len(lay.layers) == 3
    assert_boxes_apart(lay)
    assert_layers_forward(lay)


def test_a_small_graph_keeps_its_natural_left_to_right_shape() -> None:
    ids = ["extract", "validate", "approve_gate", "publish"]
    edges = [*itertools.pairwise(ids), ("validate", "publish")]
    auto = layout(nodes(*ids), edges, direction="auto")
    lr = layout(nodes(*ids), edges, direction="LR")
    assert (auto.direction, auto.bands) == ("LR", 1)
    assert auto.boxes == lr.boxes and auto.routes == lr.routes


@pytest.mark.parametrize("length", [1, 2, 5, 9, 20, 60])
def test_any_chain_lays_out_apart_and_forward(length: int) -> None:
    ids = [f"step{i}" for i in range(length)]
    edges = [*itertools.pairwise(ids), *((ids[i], ids[i + 3]) for i in range(length - 3))]
    lay = assert_edges_avoid_boxes(nodes(*ids), edges, "auto")
    assert_boxes_apart(lay)
    assert_layers_forward(lay)
    assert lay.width >= max(b.x + b.width for b in lay.boxes.values())
    assert lay.height >= max(b.y + b.height for b in lay.boxes.values())
    # Never smaller on the page than the best of one row or one column.
    best = max(scale(lay_.width, lay_.height) for lay_ in (
        layout(nodes(*ids), edges, direction="LR"), layout(nodes(*ids), edges, direction="TB")))
    assert scale(lay.width, lay.height) >= best - 1e-9


def test_a_cycle_is_never_folded() -> None:
    ids = [f"t{i}" for i in range(14)]
    edges = [*itertools.pairwise(ids), ("t13", "t0")]
    lay = layout(nodes(*ids), edges, direction="auto")
    assert lay.bands == 1 and lay.back_edges


def test_the_figure_holds_the_fitted_svg_and_a_legend() -> None:
    ns = [Node(n, n, "success") for n in CHURN[:9]] + [
        Node("promote_gate", "promote_gate", "awaiting_approval"), Node("promote", "promote")]
    figure = dag_figure(ns, CHURN_EDGES)
    root = ET.fromstring(str(figure))
    assert root.tag == "figure" and root.get("class") == "dag-box"
    svg = root.find("{http://www.w3.org/2000/svg}svg")
    assert svg is not None
    assert svg.get("preserveAspectRatio") == "xMidYMid meet"
    assert svg.get("viewBox") == f"0 0 {svg.get('width')} {svg.get('height')}"
    legend = root.find("ul")
    assert legend is not None
    assert [(li.get("data-state"), "".join(li.itertext())) for li in legend] == [
        ("success", "success"), ("awaiting_approval", "awaiting approval"), ("", "never ran")]
    assert [li[0].get("class") for li in legend] == [
        "sq state-success", "sq state-awaiting_approval", "sq state-none"]


def test_the_legend_takes_words_of_its_own_and_escapes_them() -> None:
    legend = ET.fromstring(str(dag_legend(
        [Node("a", "a", "success"), Node("b", "b", "weird<state>")],
        labels={"success": "this <version>"})))
    assert [(li.get("data-state"), "".join(li.itertext())) for li in legend] == [
        ("success", "this <version>"), ("", "never ran")]  # an odd state reads as none


def test_an_empty_graph_has_an_empty_legend() -> None:
    root = ET.fromstring(str(dag_figure([], [])))
    assert root.find("ul") is not None and len(root.find("ul")) == 0  # type: ignore[arg-type]
