"""A cycle close leaves its figures in the Prometheus metrics (bridge.metrics)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.registry import REGISTRY

from solusio.client import SolusIOClient
from usage.close import close_cycle
from usage.rules import period_of_month
from users.models import Customer

pytestmark = pytest.mark.django_db

OCT = datetime(2026, 10, 1, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_close_records_its_stages_rows_and_invoices(
    client: SolusIOClient, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    for user in (1, 2, 3):
        add_server(user, 1, OCT - timedelta(days=1))
    period = period_of_month(2026, 10, "UTC")
    closes = sample("bridge_closes_total")
    pulls = sample("bridge_close_stage_seconds_count", stage="pull")

    summary = close_cycle(
        period=period, client=client, auto_issue=True, now=datetime(2029, 1, 1, tzinfo=UTC)
    )

    assert sample("bridge_closes_total") == closes + 1
    assert sample("bridge_close_stage_seconds_count", stage="pull") == pulls + 1
    assert sample("bridge_close_last", figure="rows") == summary.rows > 0
    assert sample("bridge_close_last", figure="invoices_created") == summary.created == 3
    assert sample("bridge_close_last", figure="invoices_issued") == summary.issued == 3
    assert sample("bridge_close_last", figure="invoices_held") == 0
    # A dry run is not a close.
    close_cycle(period=period, client=client, dry_run=True, now=datetime(2029, 1, 1, tzinfo=UTC))
    assert sample("bridge_closes_total") == closes + 1
