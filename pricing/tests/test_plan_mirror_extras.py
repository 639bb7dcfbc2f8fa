"""Plans mirror SolusIO's additional-IP prices and paid-backup percentage (rule R7)."""

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from pricing import plan_sync
from pricing.models import Plan
from solusio.testing import (  # noqa: F401
    SimulatorInfo,
    serving_recorded,
    solusio_settings,
    solusio_sim,
)

pytestmark = pytest.mark.django_db


def test_ip_prices_and_the_backup_percentage_are_mirrored(
    solusio_settings: SimulatorInfo,  # noqa: F811
    admin_client: Client,
) -> None:
    Plan.objects.create(id=1, name="old", tokens_per_hour=8, tokens_per_month=5500)
    plan_sync.mirror_plans()
    one, three, free = (Plan.objects.get(pk=pk) for pk in (1, 3, 7))
    assert (one.solusio_ip_tokens_per_hour, one.solusio_ip_tokens_per_month) == (1, 500)
    assert (one.solusio_backup_price, three.solusio_backup_price) == (Decimal(10), Decimal(20))
    assert free.solusio_backup_price == 0
    # The price book's own prices are untouched by what is mirrored.
    assert (one.tokens_per_hour, one.tokens_per_month) == (8, 5500)
    page = admin_client.get("/admin/pricing/plan/1/change/").content.decode()
    assert "additional IP 1 / 500; backups 10\u00a0% of the runtime charge" in page


def test_a_plan_whose_solusio_reports_no_backup_price_mirrors_none(settings: Any) -> None:
    # An older SolusIO's plan: no IP prices, no backup price.
    plan = {"id": 1, "name": "1 Core", "tokens_per_hour": 7, "tokens_per_month": 5000}
    page = {"data": [plan], "meta": {"current_page": 1, "last_page": 1}}
    with serving_recorded({"/plans": (200, page)}) as server:
        settings.SOLUSIO_API_URL = server.url
        settings.SOLUSIO_API_TOKEN = "recorded"
        plan_sync.mirror_plans()
    one = Plan.objects.get(pk=1)
    assert (one.solusio_backup_price, one.solusio_ip_tokens_per_hour) == (None, None)
    assert one.solusio_tokens_per_hour == 7
