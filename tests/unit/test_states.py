"""The table of allowed transitions, checked state by state."""

import pytest

from collect_api.jobs.models import ACTIVE, TERMINAL, TRANSITIONS, JobState, can_move

S = JobState


@pytest.mark.parametrize("final", sorted(TERMINAL))
def test_a_final_state_goes_nowhere(final: JobState) -> None:
    assert all(not can_move(final, to) for to in S)


def test_every_state_that_is_not_final_can_be_terminated_or_is_being_so() -> None:
    for state in set(S) - TERMINAL - {S.TERMINATING}:
        assert can_move(state, S.TERMINATING), state
    assert TRANSITIONS[S.TERMINATING] == {S.TERMINATED, S.FAILED}


def test_only_a_running_job_completes_and_only_a_terminating_one_ends_terminated() -> None:
    assert {s for s in S if can_move(s, S.COMPLETED)} == ACTIVE
    assert {s for s in S if can_move(s, S.TERMINATED)} == {S.TERMINATING}


def test_pause_and_resume_move_as_the_contract_says() -> None:
    assert can_move(S.RUNNING, S.PAUSING) and can_move(S.PAUSING, S.PAUSED)
    assert can_move(S.PAUSING, S.RUNNING)  # resumed before the safe point
    assert can_move(S.PAUSED, S.QUEUED) and can_move(S.PAUSED, S.RUNNING)
    assert not can_move(S.PAUSED, S.COMPLETED)
    assert not can_move(S.QUEUED, S.PAUSING)  # a queued job is paused at once
    assert can_move(S.QUEUED, S.PAUSED)


def test_no_state_moves_to_itself() -> None:
    assert all(not can_move(s, s) for s in S)
