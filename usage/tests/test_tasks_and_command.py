"""The beat task and `manage.py close_cycle`."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command

from solusio.testing import SimulatorInfo
from usage.models import (
    BillingSettings,
    CloseRun,
    CloseRunState,
    Invoice,
    InvoiceStatus,
    UsagePull,
)
from usage.tasks import close_previous_period
from users.models import Customer

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


@pytest.fixture
def sim_settings(sim: SimulatorInfo, settings: Any) -> SimulatorInfo:
    settings.SOLUSIO_API_URL = sim.url
    settings.SOLUSIO_API_TOKEN = sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    return sim


def test_beat_runs_the_close_every_hour() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["usage-close-previous-period"]
    assert entry["task"] == close_previous_period.name
    assert entry["schedule"].minute == {7}
    assert entry["schedule"].hour == set(range(24))
    tasks = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"usage.tasks.dunning_sweep", "usage.tasks.refresh_month_to_date"} <= tasks


def test_the_task_closes_last_month_of_the_billing_zone_on_the_1st(
    sim_settings: SimulatorInfo,
    customers: list[Customer],
    add_server: Callable[..., Any],
    settings: Any,
    close_tasks_here: Callable[[], Any],
) -> None:
    settings.BILLING_TIMEZONE = "Europe/Berlin"
    october_start = datetime(2026, 9, 30, 22, tzinfo=UTC)  # 1 October, midnight in Berlin
    add_server(1, 5, october_start - 24 * H)
    BillingSettings.objects.update_or_create(pk=1, defaults={"auto_issue": True})
    # 31 October 23:30 UTC is already 1 November 00:30 in Berlin.
    with time_machine.travel(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), tick=False):
        with close_tasks_here():
            submitted = close_previous_period()
        run = CloseRun.objects.get()
        assert submitted == f"2026-10: close run #{run.pk} submitted"
        assert run.state == CloseRunState.DONE
        assert (run.issued, run.shards_total, run.inline) == (1, 1, False)
        assert close_previous_period() == "2026-10: already closed"
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.ISSUED
    assert invoice.period_start == october_start
    assert invoice.tokens == 745 * 10  # the month Berlin leaves summer time in


def test_the_task_before_the_1st_in_the_billing_zone_closes_the_month_before(
    sim_settings: SimulatorInfo,
    customers: list[Customer],
    settings: Any,
    close_tasks_here: Callable[[], Any],
) -> None:
    settings.BILLING_TIMEZONE = "America/New_York"
    # 1 November 02:00 UTC is still 31 October in New York: October is not over there.
    with time_machine.travel(datetime(2026, 11, 1, 2, tzinfo=UTC), tick=False), close_tasks_here():
        assert close_previous_period().endswith("submitted")
    assert CloseRun.objects.get().state == CloseRunState.DONE
    assert UsagePull.objects.get().period.month == 9


def test_the_command_prints_a_summary(
    sim_settings: SimulatorInfo, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    october = datetime(2026, 10, 1, tzinfo=UTC)
    add_server(1, 1, october - 24 * H)
    add_server(4, 1, october - 24 * H)  # an orphan
    out = StringIO()
    with time_machine.travel(datetime(2026, 11, 2, tzinfo=UTC)):
        call_command("close_cycle", "--period", "2026-10", "--dry-run", stdout=out)
        assert not Invoice.objects.exists()
        assert "DRY RUN" in out.getvalue()
        out = StringIO()
        call_command("close_cycle", "--period", "2026-10", "--issue", "yes", stdout=out)
    text = out.getvalue()
    assert "usage rows pulled: 2  orphans: 1" in text
    assert "customers invoiced: 1  lines: 1" in text
    assert "issued now: 1" in text
    assert "USD: 1 invoices, 5,000 tokens, subtotal 5.00, taxes 0.00, total 5.00" in text


def test_the_command_refuses_a_bad_period(sim_settings: SimulatorInfo) -> None:
    with pytest.raises(CommandError, match="2026-10"):
        call_command("close_cycle", "--period", "October")
    with pytest.raises(CommandError, match="not over"):
        call_command("close_cycle", "--period", "2099-01")


def test_one_customer_is_rebuilt_from_the_stored_pull_without_asking_solusio(
    sim_settings: SimulatorInfo, customers: list[Customer], add_server: Callable[..., Any]
) -> None:
    from decimal import Decimal

    from pricing.models import Discount

    october = datetime(2026, 10, 1, tzinfo=UTC)
    add_server(1, 1, october - 24 * H)
    add_server(2, 1, october - 24 * H)
    add_server(4, 1, october - 24 * H)  # an orphan
    with time_machine.travel(datetime(2026, 11, 2, tzinfo=UTC)):
        with pytest.raises(CommandError, match="no complete usage pull stored"):
            call_command("close_cycle", "--period", "2026-10", "--stored", stdout=StringIO())
        call_command("close_cycle", "--period", "2026-10", "--issue", "no", stdout=StringIO())
        before = dict(Invoice.objects.values_list("customer_id", "total"))
        assert before == {1: Decimal("5.0000"), 2: Decimal("5.0000")}
        # Staff fix customer 1's pricing, then rebuild only that draft.
        customers[0].discounts.add(Discount.objects.create(name="Fix", multiplier=Decimal("0.5")))
        usage_calls = len(sim_settings.control.calls(path="/usage"))
        out = StringIO()
        call_command(
            "close_cycle", "--period", "2026-10", "--customer", "1", "--stored", stdout=out
        )
    assert len(sim_settings.control.calls(path="/usage")) == usage_calls  # not asked
    assert dict(Invoice.objects.values_list("customer_id", "total")) == {
        1: Decimal("2.5000"),
        2: Decimal("5.0000"),
    }
    assert "usage rows stored (not pulled again): 3" in out.getvalue()
    with pytest.raises(CommandError, match="dry run always asks SolusIO"):
        call_command("close_cycle", "--period", "2026-10", "--stored", "--dry-run")
