"""A pipeline for the UI polish tests (issue 16, part 7): a bool, a choice, a bounded int and
a text param; a schedule in UTC; a description in Markdown with hostile bits; tasks declared
in an order that is neither alphabetical nor the order they ran in; a task with one retry."""

from cadenza import Param, Pipeline

pipe = Pipeline(
    "polish_demo",
    params={"dry_run": Param(False, description="Only say what would change."),
            "size": Param("small", choices=("small", "large")),
            "rows": Param(100, min=1, max=1000, description="How many rows to tidy."),
            "note": Param("", description="Free text.")},
    schedule="*/10 * * * *", timezone="UTC",
    description=(
        "Tidies **rows** for the [docs](https://example.org/docs) and [home](/runs).\n\n"
        "<script>alert('md')</script> <img src=x onerror=\"alert('md')\">\n\n"
        "[click me](javascript:alert('md')) [data](data:text/html,<b>x</b>)"),
    max_active_runs=4,
)


@pipe.task
def zeta(ctx):  # type: ignore[no-untyped-def]
    return ctx.params["rows"]


@pipe.task(retries=1)
def mid(zeta):  # type: ignore[no-untyped-def]
    return zeta + 1


@pipe.task
def alpha(zeta, dry_run, size):  # type: ignore[no-untyped-def]
    return {"rows": zeta, "dry_run": dry_run, "size": size}


@pipe.task
def omega(alpha, mid):  # type: ignore[no-untyped-def]
    return [alpha, mid]
