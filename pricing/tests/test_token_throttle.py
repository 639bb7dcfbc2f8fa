"""Wrong GetTokenPricing tokens are counted per client address in the shared cache: past
PRICING_TOKEN_FAILURE_LIMIT the address gets 429, and each failure is logged with it."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from pricing import views
from users.models import Customer

URL = "/api/solusio"
TOKEN = "test-pricing-token"


@pytest.fixture(autouse=True)
def _forget_blocks() -> Iterator[None]:
    views._blocked_until.clear()
    yield
    views._blocked_until.clear()


def ask(token: str, address: str = "203.0.113.5", **meta: Any) -> int:
    body = f"action=GetTokenPricing&userid=1&token={token}"
    response = Client(REMOTE_ADDR=address).post(
        URL, data=body, content_type="application/x-www-form-urlencoded", **meta
    )
    return response.status_code


def test_wrong_tokens_get_429_after_the_limit_and_then_even_the_right_one(
    gbp_customer: Customer,
) -> None:
    answers = [ask(f"guess-{i}") for i in range(60)]
    assert answers[:20] == [403] * 20
    assert set(answers[20:]) == {429}
    assert ask(TOKEN) == 429
    assert ask(TOKEN, address="203.0.113.6") == 200  # another address is served


def test_missing_tokens_count_too(gbp_customer: Customer) -> None:
    assert {ask("") for _ in range(20)} == {401}
    assert ask("") == 429


def test_another_process_refuses_a_blocked_address_at_its_next_wrong_token(
    gbp_customer: Customer,
) -> None:
    for i in range(20):
        ask(f"guess-{i}")
    views._blocked_until.clear()  # a process that has not seen this address yet
    assert ask("guess-again") == 429
    assert ask(TOKEN) == 429  # and now it knows


def test_a_correct_token_never_touches_the_shared_counter(
    gbp_customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any) -> int:
        raise AssertionError("the hot path read the failure counter")

    monkeypatch.setattr(views.TOKEN_FAILURES, "count", forbidden)
    monkeypatch.setattr(views.TOKEN_FAILURES, "fail", forbidden)
    assert [ask(TOKEN) for _ in range(50)] == [200] * 50


def test_failures_are_logged_with_the_client_address_behind_a_trusted_proxy(
    gbp_customer: Customer, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    with caplog.at_level(logging.WARNING, logger="pricing.views"):
        # The proxy appended the address it saw; the client wrote the first entry itself.
        for _ in range(20):
            ask("wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7")
    lines = [r.getMessage() for r in caplog.records if r.name == "pricing.views"]
    assert lines[0] == "GetTokenPricing: invalid token from 198.51.100.7 (1 in the window)"
    assert len(lines) == 20
    assert all("198.51.100.7" in line for line in lines)
    # Blocked by the address the proxy saw, whatever the client writes in front of it.
    assert ask(TOKEN, address="10.0.0.2", HTTP_X_FORWARDED_FOR="5.6.7.8, 198.51.100.7") == 429
    assert ask(TOKEN, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.8") == 200


def test_a_cache_outage_does_not_turn_a_wrong_token_into_a_500(
    gbp_customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache down")

    monkeypatch.setattr("bridge.security.cache.add", down)
    assert ask("wrong") == 403
