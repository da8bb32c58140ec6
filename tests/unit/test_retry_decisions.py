"""The retry policy's decisions, pinned on their own: how many attempts and how long a
transaction gets, how long it waits after a conflict, and how a unit of work learns that
an earlier attempt's COMMIT answer was lost. The router's tests
(tests/app/test_retry_policy.py) run these against real transactions; here each edge is
checked directly, so a changed bound fails in a second."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import create_engine

from webapp.database.retry import COMMIT_UNKNOWN_OPTION, RetryPolicy, after_unknown_commit


def test_the_defaults_and_the_configured_budgets():
    assert RetryPolicy.from_config({}) == RetryPolicy(retry_budget=8, time_budget=10.0)
    configured = RetryPolicy.from_config({"DB_RETRY_BUDGET": "3", "DB_RETRY_TIME_BUDGET": "2.5"})
    assert (configured.retry_budget, configured.time_budget) == (3, 2.5)
    assert isinstance(configured.time_budget, float)
    # A negative budget means "no retries", not fewer than none.
    assert RetryPolicy.from_config({"DB_RETRY_BUDGET": -2}).retry_budget == 0
    assert RetryPolicy.from_config({"DB_RETRY_BUDGET": 0}).retry_budget == 0


def test_a_transaction_is_exhausted_after_its_budget_or_its_time():
    policy = RetryPolicy(retry_budget=2, time_budget=1.0)
    # The first attempt and two retries run; the fourth attempt does not.
    assert [policy.exhausted(attempts, 0.5) for attempts in (1, 2, 3)] == [False, False, True]
    assert policy.exhausted(1, 0.0) is True  # no time left
    assert policy.exhausted(1, -0.1) is True
    assert policy.exhausted(1, 0.001) is False
    assert RetryPolicy(retry_budget=0).exhausted(1, 5.0) is True


def _pauses(policy: RetryPolicy, conflicts: int, remaining: float, n: int = 400) -> list[float]:
    rng_state = random.getstate()
    random.seed(1234)
    try:
        return [policy.conflict_pause(conflicts, remaining) for _ in range(n)]
    finally:
        random.setstate(rng_state)


@pytest.mark.parametrize(("conflicts", "cap"), [
    (0, 0.005), (1, 0.01), (2, 0.02), (5, 0.16), (6, 0.25), (30, 0.25),
])
def test_the_pause_after_a_conflict_doubles_up_to_its_cap(conflicts, cap):
    """Full jitter: uniform between 0 and min(cap, base * 2**conflicts)."""
    pauses = _pauses(RetryPolicy(), conflicts, remaining=10.0)
    assert all(0.0 <= pause <= cap for pause in pauses)
    assert max(pauses) > 0.9 * cap  # it uses the whole range...
    assert min(pauses) < 0.1 * cap  # ...from (almost) nothing


def test_the_pause_never_outlasts_the_time_left():
    assert all(p <= 0.001 for p in _pauses(RetryPolicy(), 10, remaining=0.001))
    assert max(_pauses(RetryPolicy(), 10, remaining=0.001)) > 0.0009
    assert set(_pauses(RetryPolicy(), 10, remaining=-1.0)) == {0.0}


def test_a_unit_of_work_learns_of_a_lost_commit_answer_from_its_connection():
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert after_unknown_commit(conn) is False
            assert after_unknown_commit(
                conn.execution_options(**{COMMIT_UNKNOWN_OPTION: True})) is True
            assert after_unknown_commit(
                conn.execution_options(**{COMMIT_UNKNOWN_OPTION: False})) is False
    finally:
        engine.dispose()
