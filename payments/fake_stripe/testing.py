"""Test helpers: the fake Stripe on a free port with the bridge's settings pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from payments.fake_stripe import FakeState, RunningFake, start_in_thread

SECRET_KEY = "sk_test_fake_0123456789abcdef"  # noqa: S105 - the fake's test key, not a secret
WEBHOOK_SECRET = "whsec_fake_0123456789abcdef"  # noqa: S105


@contextmanager
def running_fake_stripe(webhook_url: str = "") -> Iterator[RunningFake]:
    running = start_in_thread(
        FakeState(secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, webhook_url=webhook_url)
    )
    try:
        yield running
    finally:
        running.stop()


def control(fake: RunningFake, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST (with a body) or GET the fake's /_fake/ control API."""
    url = f"{fake.url}/_fake/{path}"
    answer = (
        requests.post(url, json=body, timeout=15)
        if body is not None
        else requests.get(url, timeout=15)
    )
    answer.raise_for_status()
    return answer.json()


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[RunningFake]:
    """The fake Stripe, and the bridge's Stripe settings pointing at it (the feature on)."""
    with running_fake_stripe() as fake:
        settings.STRIPE_SECRET_KEY = SECRET_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = fake.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        settings.STRIPE_TIMEOUT = 5.0
        yield fake
