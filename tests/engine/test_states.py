"""The task-instance and run state machines, as tables: every (state, new state) pair, legal or
not."""

from __future__ import annotations

import itertools

import pytest

from cadenza import InvalidTransitionError, TaskState
from cadenza.engine.states import (
    RESUMABLE,
    RUN_ENDED,
    RUN_TRANSITIONS,
    RUN_UNFINISHED,
    SUCCEEDED,
    TERMINAL,
    TRANSITIONS,
    RunState,
    move_run,
    transition,
)
from cadenza.store.base import RunRecord

S = TaskState

# The documented machine, written out again on purpose: a change to TRANSITIONS must change
# this table too, in the same commit.
LEGAL: dict[TaskState, set[TaskState]] = {
    S.PENDING: {S.QUEUED, S.SKIPPED, S.UPSTREAM_FAILED, S.CACHED, S.CANCELLED,
                S.AWAITING_APPROVAL},
    S.QUEUED: {S.RUNNING, S.CANCELLED, S.PENDING},
    S.RUNNING: {S.SUCCESS, S.FAILED, S.UP_FOR_RETRY, S.CANCELLED, S.SKIPPED, S.PENDING,
                S.CACHED},
    S.UP_FOR_RETRY: {S.QUEUED, S.CANCELLED, S.PENDING},
    S.AWAITING_APPROVAL: {S.SUCCESS, S.FAILED, S.CANCELLED, S.PENDING},
    S.FAILED: {S.PENDING},
    S.UPSTREAM_FAILED: {S.PENDING},
    S.CANCELLED: {S.PENDING},
    S.SKIPPED: set(),
    S.SUCCESS: set(),
    S.CACHED: set(),
}

PAIRS = list(itertools.product(TaskState, TaskState))


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    assert set(LEGAL) == set(TaskState)
    assert len(PAIRS) == len(TaskState) ** 2 == 121


def test_transitions_match_the_documented_table() -> None:
    assert {old: set(new) for old, new in TRANSITIONS.items()} == LEGAL


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{o}->{n}" for o, n in PAIRS])
def test_transition(old: TaskState, new: TaskState) -> None:
    if new in LEGAL[old]:
        assert transition("x", "r1", old, new) is new
        return
    with pytest.raises(InvalidTransitionError) as excinfo:
        transition("x", "r1", old, new)
    exc = excinfo.value
    assert str(exc) == f"task 'x' in run r1: cannot go from {old.value} to {new.value}"
    assert (exc.task, exc.run_id, exc.old, exc.new) == ("x", "r1", old.value, new.value)
    assert type(exc.old) is str and type(exc.new) is str


def test_no_state_moves_to_itself() -> None:
    for state in TaskState:
        assert state not in TRANSITIONS[state]


def test_states_are_lowercase_strings_equal_to_their_names() -> None:
    for state in TaskState:
        assert state == state.name.lower() == state.value
        assert str(state) == state.value


def test_every_state_is_reachable_from_pending() -> None:
    seen, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(TaskState)


# -- the documented sets ---------------------------------------------------------------------


def test_terminal_states() -> None:
    assert {S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.CACHED, S.CANCELLED} == TERMINAL
    # a gate waiting for a person, or anything still moving, is not done
    for state in (S.PENDING, S.QUEUED, S.RUNNING, S.UP_FOR_RETRY, S.AWAITING_APPROVAL):
        assert state not in TERMINAL


def test_terminal_states_leave_only_for_a_reset_to_pending() -> None:
    for state in TERMINAL:
        assert set(TRANSITIONS[state]) <= {S.PENDING}
    for state in set(TaskState) - TERMINAL:
        assert TRANSITIONS[state], f"{state} is not terminal, so it must be able to move"


def test_succeeded_states() -> None:
    assert {S.SUCCESS, S.CACHED} == SUCCEEDED
    assert SUCCEEDED <= TERMINAL


def test_resumable_states() -> None:
    assert {
        S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED, S.RUNNING, S.QUEUED, S.UP_FOR_RETRY,
        S.AWAITING_APPROVAL,  # a resumed run asks the store again for the decision
    } == RESUMABLE
    assert not RESUMABLE & SUCCEEDED
    for state in (S.PENDING, S.SKIPPED):
        assert state not in RESUMABLE


def test_a_resume_can_send_every_resumable_state_back_to_pending() -> None:
    for state in RESUMABLE:
        assert transition("x", "r1", state, S.PENDING) is S.PENDING


# -- the run table ---------------------------------------------------------------------------

R = RunState

RUN_LEGAL: dict[RunState, set[RunState]] = {
    R.QUEUED: {R.RUNNING, R.CANCELLED},
    R.RUNNING: {R.SUCCESS, R.FAILED, R.CANCELLED, R.WAITING, R.INTERRUPTED},
    R.WAITING: {R.RUNNING, R.QUEUED, R.CANCELLED},
    R.INTERRUPTED: {R.RUNNING, R.QUEUED, R.CANCELLED},
    R.FAILED: {R.RUNNING, R.QUEUED, R.SUCCESS},
    R.CANCELLED: {R.RUNNING, R.QUEUED, R.SUCCESS, R.FAILED},
    R.SUCCESS: {R.RUNNING, R.QUEUED, R.FAILED},
}

RUN_PAIRS = list(itertools.product(RunState, RunState))


def test_the_run_table_covers_every_state() -> None:
    assert {s.value for s in RunState} == {
        "queued", "running", "waiting", "success", "failed", "cancelled", "interrupted"}
    assert set(RUN_TRANSITIONS) == set(RUN_LEGAL) == set(RunState)
    assert len(RUN_PAIRS) == 49


def test_run_transitions_match_the_documented_table() -> None:
    assert {old: set(new) for old, new in RUN_TRANSITIONS.items()} == RUN_LEGAL


@pytest.mark.parametrize(("old", "new"), RUN_PAIRS, ids=[f"{o}->{n}" for o, n in RUN_PAIRS])
def test_move_run(old: RunState, new: RunState) -> None:
    run = RunRecord("r1", "p", old.value, {}, 0.0)
    if new in RUN_LEGAL[old]:
        assert move_run(run, new) is run
        assert run.state == new.value and type(run.state) is str
        return
    with pytest.raises(InvalidTransitionError) as excinfo:
        move_run(run, new)
    exc = excinfo.value
    assert str(exc) == f"run r1: cannot go from {old.value} to {new.value}"
    assert (exc.task, exc.run_id, exc.old, exc.new) == (None, "r1", old.value, new.value)
    assert run.state == old.value  # a refused move changes nothing


def test_no_run_state_moves_to_itself() -> None:
    for state in RunState:
        assert state not in RUN_TRANSITIONS[state]


def test_every_run_state_is_reachable_from_queued_and_can_run_again() -> None:
    seen, frontier = {R.QUEUED}, [R.QUEUED]
    while frontier:
        for new in RUN_TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(RunState)
    for state in set(RunState) - {R.RUNNING}:
        assert R.RUNNING in RUN_TRANSITIONS[state], state  # a resume can take any run on


def test_run_state_sets() -> None:
    assert {R.SUCCESS, R.FAILED, R.CANCELLED} == RUN_ENDED
    assert {R.QUEUED, R.RUNNING, R.WAITING, R.INTERRUPTED} == RUN_UNFINISHED
    assert not RUN_ENDED & RUN_UNFINISHED
    assert set(RunState) == RUN_ENDED | RUN_UNFINISHED
