"""The backoff policy keeps its bounds for any settings: never above the cap, never below
its floor, and waits that grow until the cap."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.backoff import Backoff

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
policies = st.builds(Backoff, base=seconds, cap=seconds, jitter=st.floats(0, 0.5))
attempts = st.integers(min_value=1, max_value=2000)
seeds = st.integers(min_value=0, max_value=2**32)


@given(policies, attempts, seeds)
def test_a_wait_never_exceeds_the_cap_nor_falls_below_the_floor(
    policy: Backoff, attempt: int, seed: int
) -> None:
    wait = policy.delay(attempt, random.Random(seed))
    assert policy.floor(attempt) <= wait <= policy.ceiling(attempt) <= policy.cap
    # The floor is never below the first attempt's: the policy's minimum.
    assert wait >= policy.floor(1) == (1 - policy.jitter) * min(policy.base, policy.cap)


@given(policies, attempts, seeds, seeds)
def test_waits_grow_until_the_cap(policy: Backoff, attempt: int, seed: int, other: int) -> None:
    assert policy.ceiling(attempt + 1) >= policy.ceiling(attempt)
    if policy.ceiling(attempt + 1) < policy.cap:
        # Below the cap, any wait of the next attempt is at least any of this one.
        later = policy.delay(attempt + 1, random.Random(seed))
        assert later >= policy.delay(attempt, random.Random(other))


def test_the_wait_doubles_to_the_cap_without_jitter() -> None:
    policy = Backoff(base=1.0, cap=5.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_huge_attempt_count_waits_the_cap() -> None:
    assert Backoff(base=0.5, cap=30.0, jitter=0.0).delay(10**9) == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"base": -1, "cap": 1}, {"base": 1, "cap": -1}, {"base": 1, "cap": 2, "jitter": 0.6}]
)
def test_settings_that_break_the_bounds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
