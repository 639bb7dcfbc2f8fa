"""Retries under every fault, as the simulator's call log sees them."""

import itertools
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from solusio.client import SolusIOClient
from solusio.errors import ValidationFailed
from solusio.retry import RetryPolicy
from solusio.testing import SimulatorInfo, fast_client, running_simulator

POLICY = RetryPolicy(max_attempts=5, base_delay=0.04, max_delay=1.0, max_retry_after=3.0)


class SleepRecorder:
    """Sleeps for real (so the call log shows the gaps) and remembers each wait."""

    def __init__(self, real: bool = True) -> None:
        self.waits: list[float] = []
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def retrying(sim: SimulatorInfo, sleeps: SleepRecorder) -> Iterator[SolusIOClient]:
    # Read timeout well above a normal answer's time even on a loaded CI machine, so only the
    # injected slow answers time out.
    with fast_client(sim, retry=POLICY, sleep=sleeps, read_timeout=0.5) as client:
        yield client


FAULTS = [
    pytest.param("error", {"status": 500}, id="500"),
    pytest.param("error", {"status": 502}, id="502"),
    pytest.param("error", {"status": 503}, id="503"),
    pytest.param("rate_limit", {"retry_after": 0}, id="429"),
    pytest.param("drop", {}, id="dropped-connection"),
    pytest.param("drop_after", {}, id="answer-lost"),
    pytest.param("slow", {"delay": 1.0}, id="read-timeout"),
    pytest.param("truncate", {}, id="truncated-json"),
]


@pytest.mark.parametrize(("kind", "options"), FAULTS)
def test_a_read_survives_three_faults_in_a_row(
    retrying: SolusIOClient, sim: SimulatorInfo, sleeps: SleepRecorder, kind: str, options: dict
) -> None:
    sim.control.fail_next(kind, count=3, path="/users/1", **options)
    assert retrying.get_user(1).id == 1
    calls = sim.control.calls(path="/users/1")
    assert [c["fault"] for c in calls] == [kind, kind, kind, None]
    assert calls[-1]["status"] == 200
    assert len(sleeps.waits) == 3


def test_backoff_grows_exponentially_with_jitter_and_shows_in_the_call_log(
    retrying: SolusIOClient, sim: SimulatorInfo, sleeps: SleepRecorder
) -> None:
    sim.control.fail_next("error", count=4, path="/plans")
    retrying.list_plans()
    # Retry n waits between half and all of base * 2**(n-1) (jitter 0.5).
    for n, wait in enumerate(sleeps.waits, start=1):
        ceiling = POLICY.base_delay * 2 ** (n - 1)
        assert ceiling / 2 <= wait <= ceiling, (n, wait)
    starts = [c["ts"] for c in sim.control.calls(path="/plans")]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 4
    for gap, wait in zip(gaps, sleeps.waits, strict=True):
        assert gap >= wait
    assert gaps[3] > gaps[0]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_is_honoured(
    retrying: SolusIOClient, sim: SimulatorInfo, sleeps: SleepRecorder
) -> None:
    sim.control.fail_next("rate_limit", retry_after=1, path="/limit_groups")
    retrying.list_limit_groups()
    assert sleeps.waits == [1.0]
    first, second = sim.control.calls(path="/limit_groups")
    assert (first["status"], second["status"]) == (429, 200)
    assert second["ts"] - first["ts"] >= 1.0


def test_retry_after_is_capped(sim: SimulatorInfo) -> None:
    sleeps = SleepRecorder(real=False)
    sim.control.fail_next("rate_limit", retry_after=3600)
    with fast_client(sim, retry=POLICY, sleep=sleeps) as client:
        client.get_settings()
    assert sleeps.waits == [POLICY.max_retry_after]


def test_a_validation_error_is_never_retried(
    retrying: SolusIOClient, sim: SimulatorInfo, sleeps: SleepRecorder
) -> None:
    with pytest.raises(ValidationFailed):
        retrying.create_user(email="customer1@example.test", password="password-1")
    assert [c["status"] for c in sim.control.calls()] == [422]
    assert sleeps.waits == []


def test_writes_are_retried_on_server_errors(retrying: SolusIOClient, sim: SimulatorInfo) -> None:
    sim.control.fail_next("error", count=2, method="PUT")
    assert retrying.update_plan_prices(1, tokens_per_hour=8).tokens_per_hour == 8
    assert [c["status"] for c in sim.control.calls(method="PUT")] == [500, 500, 200]


def count_users(client: SolusIOClient, email: str) -> int:
    return sum(1 for u in client.iter_users() if u.email == email)


def test_create_whose_answer_was_lost_does_not_make_a_second_user(
    retrying: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.fail_next("drop_after", method="POST", path="/users")
    result = retrying.create_or_link_user(email="lost@example.test", billing_user_id=31)
    assert result.user.billing_user_id == 31
    assert count_users(retrying, "lost@example.test") == 1
    assert [(c["method"], c["status"], c["fault"]) for c in sim.control.calls()][:4] == [
        ("GET", 200, None),  # look-up: not there
        ("POST", 201, "drop_after"),  # created, answer lost
        ("POST", 422, None),  # the retry: e-mail taken
        ("GET", 200, None),  # so look it up and link it
    ]


def test_create_whose_answer_was_truncated_is_looked_up_not_resent(
    retrying: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.fail_next("truncate", method="POST", path="/users")
    result = retrying.create_or_link_user(email="cut@example.test", billing_user_id=32)
    assert result.user.email == "cut@example.test"
    assert len(sim.control.calls(method="POST")) == 1
    assert count_users(retrying, "cut@example.test") == 1


def test_create_that_timed_out_while_succeeding_makes_one_user(
    retrying: SolusIOClient, sim: SimulatorInfo
) -> None:
    sim.control.fail_next("slow", method="POST", path="/users", delay=1.0)
    retrying.create_or_link_user(email="slow@example.test", billing_user_id=33)
    deadline = time.monotonic() + 5
    while any(c["status"] is None for c in sim.control.calls(method="POST")):
        assert time.monotonic() < deadline
        time.sleep(0.05)  # let the slow first attempt finish on the server
    assert sorted(c["status"] for c in sim.control.calls(method="POST")) == [201, 422]
    assert count_users(retrying, "slow@example.test") == 1


def test_random_faults_do_not_change_what_is_read() -> None:
    window = (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
    with running_simulator(users=60) as info:
        with fast_client(info, per_page=20) as client:
            clean = list(client.iter_usage(*window))
        info.control.set_faults(
            rates={"error": 0.1, "rate_limit": 0.1, "drop": 0.1, "truncate": 0.1},
            retry_after=0,
            seed=7,
        )
        policy = RetryPolicy(max_attempts=12, base_delay=0.001, max_delay=0.01)
        with fast_client(info, per_page=20, retry=policy) as client:
            noisy = list(client.iter_usage(*window))
        faults = [c["fault"] for c in info.control.calls() if c["fault"]]
    assert noisy == clean
    assert len(faults) >= 3


def test_logs_never_contain_the_token_or_passwords(caplog: pytest.LogCaptureFixture) -> None:
    token = "tok-SEKRET-0123456789"
    with running_simulator(token=token) as info:
        caplog.set_level(logging.DEBUG)
        with fast_client(info, retry=POLICY, sleep=lambda s: None) as client:
            for kind in ("error", "drop", "truncate", "rate_limit"):
                info.control.fail_next(kind, retry_after=0)
                client.get_user(1)
            client.create_or_link_user(
                email="p@example.test", billing_user_id=9, password="hunter2-PASSWORD"
            )
            client.patch_settings(
                {"billing_integration": {"drivers": {"whmcs": {"token": "pt-XYZ"}}}}
            )
            sso = client.create_login_token(1)
            with pytest.raises(ValidationFailed) as caught:
                client.create_user(email="p@example.test", password="hunter2-PASSWORD")
            logging.getLogger("test").error("failure: %s %r", caught.value, caught.value)
        calls = info.control.calls()
    text = caplog.text
    assert "SolusIO GET /users/1 failed" in text  # the retries were logged
    assert "p@example.test" in text  # bodies are logged at DEBUG, redacted
    for secret in (token, "hunter2-PASSWORD", "pt-XYZ", sso):
        assert secret not in text
        assert secret not in repr(calls)
