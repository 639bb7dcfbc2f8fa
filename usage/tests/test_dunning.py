"""Dunning: unpaid N days after issue suspends; settling the overdue reactivates."""

from datetime import UTC, date, datetime, timedelta

import pytest

from usage import dunning, invoice_states
from usage.models import BillingSettings, DunningEvent, Invoice, InvoiceStatus
from usage.tasks import dunning_sweep
from users.models import Customer, CustomerStatus

pytestmark = pytest.mark.django_db
ISSUED = datetime(2026, 11, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def issued_invoice(customer: Customer, month: int) -> Invoice:
    invoice = Invoice.objects.create(
        customer=customer,
        period=date(2026, month, 1),
        period_start=datetime(2026, month, 1, tzinfo=UTC),
        period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
        currency="USD",
        generated_at=ISSUED,
    )
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=ISSUED)
    return Invoice.objects.get(pk=invoice.pk)


def status(customer: Customer) -> str:
    return Customer.objects.get(pk=customer.pk).status


@pytest.fixture
def ten_days() -> None:
    BillingSettings.objects.update_or_create(pk=1, defaults={"dunning_days": 10})


def test_unpaid_n_days_after_issue_suspends_and_paying_reactivates(
    customers: list[Customer], ten_days: None
) -> None:
    ann, bob, _ = customers
    october = issued_invoice(ann, 10)
    paid_in_time = issued_invoice(bob, 10)
    invoice_states.mark_paid(invoice_id=paid_in_time.pk, now=ISSUED + 5 * DAY)
    assert dunning.sweep(now=ISSUED + 10 * DAY - timedelta(seconds=1)) == 0
    assert dunning.sweep(now=ISSUED + 10 * DAY) == 1
    assert status(ann) == CustomerStatus.SUSPENDED
    assert status(bob) == CustomerStatus.ACTIVE
    assert dunning.sweep(now=ISSUED + 11 * DAY) == 0  # already suspended: nothing twice
    [event] = DunningEvent.objects.all()
    assert (event.action, event.invoice_id) == ("suspended", october.pk)
    assert "INV-000001 (2026-10) unpaid 10 days" in event.reason
    invoice_states.mark_paid(invoice_id=october.pk, now=ISSUED + 12 * DAY)
    assert status(ann) == CustomerStatus.ACTIVE
    assert list(DunningEvent.objects.values_list("action", flat=True)) == [
        "reactivated",
        "suspended",
    ]


def test_reactivation_waits_until_nothing_else_is_overdue(
    customers: list[Customer], ten_days: None
) -> None:
    ann = customers[0]
    first, second = issued_invoice(ann, 9), issued_invoice(ann, 10)
    dunning.sweep(now=ISSUED + 20 * DAY)
    invoice_states.mark_paid(invoice_id=first.pk, now=ISSUED + 21 * DAY)
    assert status(ann) == CustomerStatus.SUSPENDED
    invoice_states.void_invoice(invoice_id=second.pk, now=ISSUED + 22 * DAY)
    assert status(ann) == CustomerStatus.ACTIVE
    assert Invoice.objects.get(pk=second.pk).number == 2  # void keeps the number


def test_a_customer_staff_suspended_stays_suspended(
    customers: list[Customer], ten_days: None
) -> None:
    ann = customers[0]
    invoice = issued_invoice(ann, 10)
    Customer.objects.filter(pk=ann.pk).update(status=CustomerStatus.SUSPENDED)
    assert dunning.sweep(now=ISSUED + 30 * DAY) == 0  # only active customers are dunned
    invoice_states.mark_paid(invoice_id=invoice.pk, now=ISSUED + 31 * DAY)
    assert status(ann) == CustomerStatus.SUSPENDED
    assert not DunningEvent.objects.exists()


def test_zero_days_turns_dunning_off(customers: list[Customer], settings: object) -> None:
    BillingSettings.objects.update_or_create(pk=1, defaults={"dunning_days": 0})
    issued_invoice(customers[0], 10)
    assert dunning_sweep() == 0
    assert status(customers[0]) == CustomerStatus.ACTIVE
    assert Invoice.objects.get().status == InvoiceStatus.ISSUED


def test_suspension_reaches_solusio_through_the_user_sync(
    customers: list[Customer], ten_days: None, sim: object, settings: object
) -> None:
    from solusio.testing import SimulatorInfo
    from users import sync
    from users.models import SyncRecord

    assert isinstance(sim, SimulatorInfo)
    settings.SOLUSIO_API_URL = sim.url  # type: ignore[attr-defined]
    settings.SOLUSIO_API_TOKEN = sim.token  # type: ignore[attr-defined]
    settings.SOLUSIO_VERIFY_TLS = False  # type: ignore[attr-defined]
    ann = customers[0]
    issued_invoice(ann, 10)
    dunning.sweep(now=ISSUED + 10 * DAY)
    assert SyncRecord.objects.filter(customer_id=ann.pk, reason__contains="unpaid").exists()
    sync.deliver_pending(customer_id=ann.pk)
    state = sim.control.simulator.state  # type: ignore[union-attr]
    [user] = [u for u in state.users.values() if u["billing_user_id"] == ann.pk]
    assert user["status"] == "suspended"
