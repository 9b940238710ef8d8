"""Pipelines for the data views' tests (tests/web/test_data_views.py, test_browser_data.py):
a mapped task whose item 3 fails until the file ``fixed`` exists in the project, a table, a
JSON document, a text file, an HTML page and an SVG that try to run script, a PNG, a pickle,
metrics, and a second pipeline that a new version of ``train`` triggers."""

import base64

import pandas as pd

from cadenza import Pipeline, ctx, on_new_version

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
HTML = """<!doctype html><html><head><title>report</title>
<style>h1 { color: rebeccapurple; }</style></head><body><h1 id="title">Churn report</h1>
<script>window.parent.postMessage('ran', '*'); document.cookie = 'pwned=1; path=/';
fetch('/api/v1/runs', {method: 'GET'}).then(() => { document.title = 'script ran'; });
document.getElementById('title').textContent = 'script ran';</script>
<img src="x" onerror="document.title='script ran'"></body></html>"""
SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40">
<rect width="80" height="40" fill="teal"/><script>document.cookie='pwned=1; path=/';
document.documentElement.setAttribute('data-ran', 'yes');</script></svg>"""

pipe = Pipeline("web_data", description="Mapped items, previews and metrics.")


@pipe.task
def parts() -> list[int]:
    return list(range(12))


@pipe.task(map_over="parts")
def square(parts: int) -> int:
    print(f"squaring item {parts}")
    if parts == 3 and not (ctx.root / "fixed").exists():
        raise ValueError(f"item {parts} is broken until 'fixed' exists")
    return parts * parts


@pipe.task
def total(square: list[int]) -> int:
    return sum(square)


@pipe.task
def table() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(120)],
                         "tenure": list(range(120)), "churned": [i % 3 == 0 for i in range(120)]})


@pipe.task
def doc() -> dict[str, object]:
    return {"model": "gbm", "params": {"depth": 3, "trees": 200},
            "notes": ["<script>alert(1)</script>"] + [f"line {i}" for i in range(3000)]}


@pipe.task(outputs={"page": "out/page.html", "picture": "out/picture.svg",
                    "chart": "out/chart.png", "notes": "out/notes.txt"})
def report(doc: dict[str, object]) -> str:
    ctx.outputs["page"].write_text(HTML)
    ctx.outputs["picture"].write_text(SVG)
    ctx.outputs["chart"].write_bytes(PNG)
    ctx.outputs["notes"].write_text("notes\n" * 5000)
    return "written"


@pipe.task
def train(table: pd.DataFrame) -> dict[str, object]:
    """Its value (a tuple inside) is stored as a pickle: the UI must never unpickle it."""
    ctx.log_metric("roc_auc", 0.8731)
    ctx.log_metric("rows", len(table))
    return {"weights": (0.1, 0.2)}


after = Pipeline("web_data_after", triggers=[on_new_version("web_data.train")],
                 description="Runs when web_data.train has a new version.")


@after.task
def score() -> int:
    return 1
