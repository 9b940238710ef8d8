"""The JSON API's answers as pydantic models, field for field the dicts web/read.py returns
(which the pages render too): FastAPI checks each answer against its model and documents it
in /api/v1/openapi.json, with the errors each endpoint can give and how to authenticate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    # A field read.py adds but no model names fails the tests instead of vanishing unseen.
    model_config = ConfigDict(extra="forbid")


class Error(Record):
    """Every error answer: one sentence saying what happened and what to do."""

    detail: str


# -- pipelines ----------------------------------------------------------------------------------

class Head(Record):
    name: str
    loaded: bool
    """Whether this UI loaded the pipeline's code (else it is known from its runs only)."""
    paused: bool
    description: str
    schedule: str | None
    """The schedule in words, e.g. "at 06:00 every day"."""
    next_run: str | None
    """ISO time of the next scheduled run, in the schedule's zone."""


class RunSummary(Record):
    run_id: str
    pipeline: str
    state: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    logical_date: str | None
    duration: float | None
    """Seconds; still growing while the run goes on."""


class PipelineRow(Head):
    last_runs: list[RunSummary]
    success_rate: float | None
    """Of the last 50 ended runs; null before any ended."""
    running: int


class PipelineList(Record):
    pipelines: list[PipelineRow]
    load_errors: dict[str, str]
    """Targets that failed to load, with why."""
    version: str
    """Changes whenever anything but a duration changes: a live page polls it."""


class TaskNode(Record):
    name: str
    upstream: list[str]
    state: str
    """The task's state in the latest run ("" if it has none)."""


class ParamInfo(Record):
    name: str
    default: Any
    """Null for a secret param."""
    kind: str | None
    min: float | None
    max: float | None
    secret: bool
    description: str
    choices: list[Any] | None


class PipelineDetail(Head):
    tasks: list[TaskNode]
    runs: list[RunSummary]
    grid: dict[str, dict[str, str]]
    """Run id -> task -> state."""
    offset: int
    page: int
    params: list[ParamInfo]
    version: str


class PlanStep(Record):
    task: str
    runs: bool
    reason: str
    assumes: list[str]


class Plan(Record):
    name: str
    steps: list[PlanStep]


class FireTime(Record):
    fires_at: str
    interval: str
    dst: str | None


class Schedule(Record):
    name: str
    schedule: str | None
    timezone: str | None
    next: list[FireTime]


class Markdown(Record):
    name: str
    markdown: str


# -- runs ---------------------------------------------------------------------------------------

class RunList(Record):
    runs: list[RunSummary]
    offset: int
    page: int
    pipeline: str | None
    version: str


class Decision(Record):
    approved: bool
    by: str
    at: str | None
    reason: str


class RunTask(Record):
    task: str
    state: str
    attempt: int
    started_at: str | None
    ended_at: str | None
    duration: float | None
    error: str | None
    output: str | None
    """The hash of the artifact the task returned."""
    mapped: dict[str, int] | None
    """For a mapped task: how many items are in each state."""
    upstream: list[str]
    decision: Decision | None


class Attempt(Record):
    task: str
    map_index: int
    attempt: int
    state: str
    started: float | None
    ended: float | None
    started_at: str | None
    ended_at: str | None
    duration: float | None
    error: str | None
    traceback: str | None
    checks: list[dict[str, Any]]
    has_log: bool


class PersonAction(Record):
    kind: str
    """task_cleared, task_marked, gate_decided, run_queued (a retry or clear)."""
    ts: str | None
    task: str | None
    by: str
    reason: str
    detail: str


class RunDetail(RunSummary):
    params: dict[str, Any]
    """As stored: secret params as "***"."""
    target: str
    interval_start: str | None
    interval_end: str | None
    cancel_requested: bool
    tasks: list[RunTask]
    critical_path: list[str]
    attempts: list[Attempt]
    gates: list[str]
    """Gates waiting for a decision."""
    gate_messages: dict[str, str] = {}
    """What each waiting gate asks, as its pipeline declares it."""
    actions: list[PersonAction] = []
    """The newest things people did to the run (clear, mark, decide, retry), newest first."""
    version: str


class Artifact(Record):
    hash: str
    pipeline: str
    task: str
    name: str
    run_id: str
    serializer: str
    size: int
    created_at: str | None
    parents: list[str]


class TaskDetail(Record):
    run_id: str
    pipeline: str
    task: str
    state: str
    run_state: str
    error: str | None
    attempts: list[Attempt]
    output: Artifact | None
    files: dict[str, str]
    inputs: list[Artifact]
    gate_waiting: bool
    gate_message: str | None = None
    """What the gate asks, if the task is a gate."""


class LogPiece(Record):
    text: str
    offset: int
    """Where the next piece starts: ask again from here."""
    size: int
    state: str
    done: bool
    """The attempt has ended and everything was sent."""


# -- artifacts and events -----------------------------------------------------------------------

class ArtifactList(Record):
    artifacts: list[Artifact]
    pipeline: str | None


class AliasChange(Record):
    alias: str
    hash: str
    at: str | None
    by: str


class LineageNode(Record):
    hash: str
    pipeline: str | None
    task: str | None
    name: str | None
    run_id: str | None
    created_at: float | None
    note: Literal["", "missing", "repeated", "cut"]
    children: list[LineageNode]
    """The artifacts this one was made from."""


class ArtifactDetail(Artifact):
    active: str | None
    alias_history: list[AliasChange]
    versions: list[Artifact]
    lineage: LineageNode


class EventRow(Record):
    id: int
    run_id: str
    kind: str
    ts: str | None
    task: str | None
    data: dict[str, Any]


class EventList(Record):
    events: list[EventRow]
    older: int | None
    """The ``before`` of the next (older) page; null on the last."""


# -- actions ------------------------------------------------------------------------------------

class TriggerBody(Record):
    """The body of a trigger (as JSON; a form sends ``param.NAME`` fields instead)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"params": {"threshold": 0.5}}})
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the pipeline's params, checked against their kinds and "
                    "bounds; each at most 64 KiB as JSON, nested at most 32 deep, integers "
                    "within 64 bits. Those left out take their defaults.")


class DecisionBody(Record):
    """The body of a gate decision (JSON, or the same as form fields)."""

    reason: str = Field("", description="Why; required to reject, recorded with the run.")


class Queued(Record):
    run_id: str
    state: Literal["queued"]


class Paused(Record):
    name: str
    paused: bool


class CancelOutcome(Record):
    run_id: str
    cancel: str
    """"requested" (a live runner stops), "cancelled", or the state of a run already ended."""


class GateDecision(Record):
    run_id: str
    gate: str
    approved: bool


class Active(Record):
    active: str
    """The hash the ``active`` alias now points at."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the errors an endpoint gives, besides 401 and 403 (every
    endpoint) and 422 (every one with input)."""
    why = {
        401: "No credentials, or wrong ones.",
        403: "A cookie-borne request from another origin or without its CSRF token.",
        404: "What the path names does not exist.",
        409: "The run, gate or artifact is in a state that does not allow this now.",
        413: "The body is larger than 1 MiB.",
        422: "The input is malformed or outside a limit; ``detail`` names which.",
        429: "Too many failed logins from this address; see Retry-After.",
    }
    wanted = sorted({401, 403, 422, 429, *statuses})
    return {status: {"model": Error, "description": why[status]} for status in wanted}


def security_schemes(cookie: str) -> dict[str, Any]:
    """Bearer (the token; HTTP Basic with --user's password works too) and the session cookie
    named ``cookie``, which /login sets and whose unsafe requests need X-CSRF-Token."""
    return {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "The UI's token: `Authorization: Bearer <token>`."},
        "basic": {"type": "http", "scheme": "basic",
                  "description": "The --user and their password."},
        "cookie": {"type": "apiKey", "in": "cookie", "name": cookie,
                   "description": "The session /login sets; POSTs also need the page's "
                                  "X-CSRF-Token."},
    }
