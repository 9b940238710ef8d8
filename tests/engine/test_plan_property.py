"""`plan` is the run's own decision: on random small DAGs, after a random edit (a param, a
task's source, an input file, a declared output, nothing), plan's verdict for every task is
what the next run does, whenever the outputs plan had to assume came out as assumed."""

from __future__ import annotations

import os
import random
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cadenza._loader import load_pipeline
from cadenza.engine.plan import plan_pipeline
from cadenza.pipeline import Pipeline
from cadenza.workspace import Workspace


@dataclass
class Task:
    name: str
    upstream: list[str]
    constant: int
    cache_false: bool = False
    output_file: bool = False
    input_file: bool = False
    param: bool = False
    mapped_over: str | None = None


@dataclass
class Dag:
    tasks: list[Task] = field(default_factory=list)

    def source(self) -> str:
        lines = ["from cadenza import Pipeline, ctx", "",
                 'pipe = Pipeline("prop", params={"p": 1})', ""]
        for t in self.tasks:
            options = []
            if t.cache_false:
                options.append("cache=False")
            if t.output_file:
                options.append(f'outputs={{"out": "out/{t.name}.txt"}}')
            if t.input_file:
                options.append(f'inputs=["data/{t.name}.txt"]')
            if t.mapped_over:
                options.append(f'map_over="{t.mapped_over}"')
            decorator = f"@pipe.task({', '.join(options)})" if options else "@pipe.task"
            args = list(t.upstream) + (["p"] if t.param else [])
            if t.mapped_over and t.mapped_over not in args:
                args.insert(0, t.mapped_over)
            body = [f"base = {t.constant} % 3"]  # some edits change the source, not the value
            for up in t.upstream:
                if up == t.mapped_over:
                    body.append(f"base += {up}")
                else:
                    body.append(f"base += sum({up})")
            if t.param:
                body.append("base += p")
            if t.input_file:
                body.append(f'base += len((ctx.root / "data/{t.name}.txt").read_text())')
            if t.output_file:
                # not the bytes of a value: a file and a value with the same bytes share one
                # artifact record (noted in the session's report)
                body.append('ctx.outputs["out"].write_text("file " + str(base))')
            body.append("return base % 5" if t.mapped_over else "return [base % 5, 1]")
            lines += [decorator, f"def {t.name}({', '.join(args)}):"]
            lines += [f"    {b}" for b in body] + [""]
        return "\n".join(lines)


def random_dag(rng: random.Random) -> Dag:
    dag = Dag()
    for i in range(rng.randint(3, 6)):
        earlier = [t.name for t in dag.tasks]
        ups = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 2)))
        task = Task(f"t{i}", ups, rng.randint(0, 9))
        roll = rng.random()
        if roll < 0.15:
            task.cache_false = True
        elif roll < 0.4:
            task.output_file = True
        task.input_file = rng.random() < 0.2
        task.param = rng.random() < 0.3
        listed = [u for u in ups if not next(t for t in dag.tasks if t.name == u).mapped_over]
        if listed and rng.random() < 0.2 and not task.output_file:
            task.mapped_over = rng.choice(listed)
        dag.tasks.append(task)
    return dag


class Project:
    def __init__(self, root: Path, dag: Dag) -> None:
        self.root, self.dag = root, dag
        self.file = root / "pipeline.py"
        self.home = root / ".cadenza"
        self.stamp = 1_700_000_000_000_000_000
        (root / "data").mkdir(parents=True, exist_ok=True)
        for t in dag.tasks:
            if t.input_file:
                (root / "data" / f"{t.name}.txt").write_text("ab")
        self.write()

    def write(self) -> None:
        self.file.write_text(self.dag.source())
        self.stamp += 10**9  # a new mtime each time: the loader imports the file again
        os.utime(self.file, ns=(self.stamp, self.stamp))

    def pipeline(self) -> Pipeline:
        return load_pipeline(str(self.file))

    def edit(self, rng: random.Random) -> str:
        kind = rng.choice(["param", "source", "input", "output", "nothing"])
        tasks = self.dag.tasks
        if kind == "source":
            task = rng.choice(tasks)
            task.constant += rng.choice([1, 3])  # +3: a new source, the same value
            self.write()
            return f"source of {task.name}"
        if kind == "input" and any(t.input_file for t in tasks):
            task = rng.choice([t for t in tasks if t.input_file])
            file = self.root / "data" / f"{task.name}.txt"
            file.write_text(rng.choice(["ab", "abc", "xy"]))
            return f"input file of {task.name}"
        if kind == "output" and any(t.output_file for t in tasks):
            task = rng.choice([t for t in tasks if t.output_file])
            file = self.root / "out" / f"{task.name}.txt"
            if rng.random() < 0.5 and file.exists():
                file.unlink()
                return f"deleted output of {task.name}"
            file.write_text("edited")
            return f"edited output of {task.name}"
        if kind == "param":
            return "param"
        return "nothing"


def newest_outputs(ws: Workspace, pipe: Pipeline) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name, spec in pipe.tasks.items():
        entries = ws.store.cache_entries(pipe.name, name)
        parents = [e for e in entries if spec.map_over is None or "items" in e.meta]
        found[name] = parents[0].output if parents else None
    return found


@pytest.mark.parametrize("seed", range(40))
def test_plan_says_what_the_run_then_does(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    project = Project(tmp_path, random_dag(rng))
    params = {"p": 1}
    pipe = project.pipeline()
    assert pipe.run(home=project.home, params=params).ok, project.dag.source()
    for _ in range(3):
        what = project.edit(rng)
        if what == "param":
            params = {"p": rng.choice([1, 2, 4])}
        pipe = project.pipeline()
        ws = Workspace.open(project.home)
        try:
            steps = plan_pipeline(pipe, ws, params)
            before = newest_outputs(ws, pipe)
        finally:
            ws.close()
        result = pipe.run(home=project.home, params=params)
        assert result.ok
        came_out = {name: t.output for name, t in result.tasks.items()}
        for step in steps:
            held = all(came_out[a] == before[a] for a in step.assumes)
            if not held:
                continue
            ran = result.tasks[step.task].state not in ("cached", "skipped")
            assert step.runs == ran, (
                f"after {what}: plan said {step.task} {'runs' if step.runs else 'is reused'} "
                f"({step.reason}); the run made it {result.tasks[step.task].state}\n"
                + textwrap.indent(project.dag.source(), "    "))
