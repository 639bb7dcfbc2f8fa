"""The close and the previews talk to SolusIO through a client built from the settings."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from solusio import connect
from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo
from usage import close, pull, selectors
from usage.rules import period_of_month
from users.models import Customer

pytestmark = pytest.mark.django_db

OCT = datetime(2026, 10, 1, tzinfo=UTC)
MID_NOV = datetime(2026, 11, 15, 12, tzinfo=UTC)


@pytest.fixture
def built(
    sim: SimulatorInfo,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    customers: list[Customer],
    add_server: Callable[..., Any],
) -> tuple[list[SolusIOClient], list[SolusIOClient]]:
    """(clients built, clients closed), with SolusIO settings unlike the client's defaults."""
    settings.SOLUSIO_API_URL = sim.url
    settings.SOLUSIO_API_TOKEN = sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    settings.SOLUSIO_CONNECT_TIMEOUT = 1.5
    settings.SOLUSIO_READ_TIMEOUT = 7.5
    settings.SOLUSIO_RETRY_MAX_ATTEMPTS = 2
    settings.SOLUSIO_RETRY_BASE_DELAY = 0.03
    settings.SOLUSIO_RETRY_MAX_DELAY = 0.3
    add_server(1, 1, OCT - timedelta(days=1))
    made: list[SolusIOClient] = []
    closed: list[SolusIOClient] = []
    build, close_session = connect._Options.build, SolusIOClient.close

    def building(options: Any) -> SolusIOClient:
        made.append(build(options))
        return made[-1]

    def closing(client: SolusIOClient) -> None:
        closed.append(client)
        close_session(client)

    monkeypatch.setattr(connect._Options, "build", building)
    monkeypatch.setattr(SolusIOClient, "close", closing)
    return made, closed


CALLS: dict[str, Callable[[], object]] = {
    "close": lambda: close.close_cycle(
        period=period_of_month(2026, 10, "UTC"), now=MID_NOV, auto_issue=True
    ),
    "dry run": lambda: close.close_cycle(
        period=period_of_month(2026, 10, "UTC"), now=MID_NOV, dry_run=True
    ),
    "month to date": lambda: pull.refresh_month_to_date(now=MID_NOV),
    "live preview": lambda: selectors.preview_invoice(customer_id=1, now=MID_NOV),
}


@pytest.mark.parametrize("call", CALLS)
def test_the_client_carries_the_configured_timeouts_and_retries_and_is_closed(
    built: tuple[list[SolusIOClient], list[SolusIOClient]], call: str
) -> None:
    made, closed = built
    outcome = CALLS[call]()
    assert outcome  # a summary, a row count or a preview: SolusIO answered
    [client] = made
    assert client.timeout == (1.5, 7.5)
    retry = client.retry
    assert (retry.max_attempts, retry.base_delay, retry.max_delay) == (2, 0.03, 0.3)
    assert closed == [client]


def test_a_given_client_is_used_and_left_open(
    built: tuple[list[SolusIOClient], list[SolusIOClient]], sim: SimulatorInfo
) -> None:
    made, closed = built
    with SolusIOClient(sim.url, sim.token, verify_tls=False) as mine:
        summary = close.close_cycle(
            period=period_of_month(2026, 10, "UTC"), client=mine, now=MID_NOV
        )
        assert (made, closed) == ([], [])
    assert summary.rows == 1
