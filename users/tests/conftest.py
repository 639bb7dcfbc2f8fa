"""Fixtures for the SolusIO side of customers: an empty simulator the settings point at,
test-sized retries, and helpers that deliver the outbox the way a worker does."""

from collections.abc import Iterator
from typing import Any

import pytest

from pricing.models import Currency
from solusio.testing import SimulatorInfo, running_simulator
from users import services, sync
from users.models import Customer, SyncRecord, SyncRecordState


@pytest.fixture
def sim(settings: Any) -> Iterator[SimulatorInfo]:
    """A fresh simulator with no users (so billing ids never collide with seeded ones),
    and the bridge pointed at it with fast, single-attempt client calls: the outbox's own
    retry is what these tests exercise."""
    with running_simulator(users=0) as info:
        settings.SOLUSIO_API_URL = info.url
        settings.SOLUSIO_API_TOKEN = info.token
        settings.SOLUSIO_VERIFY_TLS = False
        settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 1
        settings.SOLUSIO_CONNECT_TIMEOUT = 2.0
        settings.SOLUSIO_READ_TIMEOUT = 3.0
        settings.SOLUSIO_SYNC_RETRY_BASE = 0.0  # due again at once
        settings.SOLUSIO_SYNC_RETRY_MAX = 0.0
        yield info


def deliver_all(rounds: int = 20) -> None:
    """Deliver every open record, as workers would, until nothing is left to do."""
    for _ in range(rounds):
        customers = set(
            SyncRecord.objects.filter(state=SyncRecordState.PENDING).values_list(
                "customer_id", flat=True
            )
        )
        if not customers:
            return
        for customer_id in sorted(customers):
            sync.deliver_pending(customer_id=customer_id)


def solusio_user(info: SimulatorInfo, customer_id: int) -> dict[str, Any] | None:
    state = info.control.simulator.state  # type: ignore[union-attr]
    found = [u for u in state.users.values() if u["billing_user_id"] == customer_id]
    assert len(found) <= 1, found
    return dict(found[0]) if found else None


@pytest.fixture
def make_customer(usd: Currency) -> Any:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Customer:
        n = next(counter)
        fields.setdefault("email", f"user{n}@example.com")
        return services.create_customer(currency=usd, **fields)

    return make
