"""A pipeline for the web UI's tests: params with rules, a fan-in, a gate, a check, a log."""

from cadenza import Param, Pipeline

pipe = Pipeline(
    "web_demo",
    params={"threshold": Param(0.5, min=0, max=1, description="How strict validate is."),
            "region": Param("eu", choices=("eu", "us"))},
    schedule="0 6 * * *", timezone="Europe/London",
    description="Extract, validate, wait for a person, publish.",
    # the web tests' store holds a run shown as running (tests/web/conftest.py): a triggered
    # run starts beside it
    max_active_runs=4,
)


@pipe.task
def extract(ctx):  # type: ignore[no-untyped-def]
    ctx.log.info("extracting for %s", ctx.params["region"])
    print("<script>alert('log')</script>")
    return [1, 2, 3]


@pipe.task
def validate(extract, threshold):  # type: ignore[no-untyped-def]
    if threshold > 0.9:
        raise ValueError(f"threshold {threshold} is too strict <b>really</b>")
    return {"total": sum(extract), "threshold": threshold}


pipe.gate("approve_gate", after=["validate"])


@pipe.task(after=["approve_gate"])
def publish(validate):  # type: ignore[no-untyped-def]
    return {"published": validate}
