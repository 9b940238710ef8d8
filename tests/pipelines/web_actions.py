"""A pipeline for the task-action and gate tests of the UI: a chain with a gate that asks a
question, and a task after it."""

from cadenza import Pipeline

pipe = Pipeline("web_ops", schedule="0 6 * * *", timezone="UTC", catchup=False,
                max_active_runs=8, description="Report daily, publish after a person's yes.")


@pipe.task(cache=False)
def extract():  # type: ignore[no-untyped-def]
    return [1, 2, 3]


@pipe.task(cache=False)
def report(extract):  # type: ignore[no-untyped-def]
    return {"rows": sum(extract)}


pipe.gate("publish", after=["report"], message="Publish the daily report to the team?")


@pipe.task(cache=False, after=["publish"])
def send():  # type: ignore[no-untyped-def]
    return "sent"
