"""Dunning: unpaid N days after issue suspends; settling the overdue reactivates."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from pricing.models import Currency, Discount
from pricing.tests.api_helpers import body, staff_client
from solusio.client import SolusIOClient
from solusio.testing import SimulatorInfo
from usage import close, dunning, invoice_states, selectors
from usage.models import BillingSettings, DunningAction, DunningEvent, Invoice, InvoiceStatus
from usage.rules import period_of_month
from usage.tasks import dunning_sweep
from users import sync
from users.models import Customer, CustomerStatus, SyncRecord, SyncRecordState

pytestmark = pytest.mark.django_db
ISSUED = datetime(2026, 11, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def issued_invoice(customer: Customer, month: int, total: str = "12.34") -> Invoice:
    invoice = Invoice.objects.create(
        customer=customer,
        period=date(2026, month, 1),
        period_start=datetime(2026, month, 1, tzinfo=UTC),
        period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
        currency="USD",
        subtotal=Decimal(total),
        total=Decimal(total),
        generated_at=ISSUED,
    )
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=ISSUED)
    return Invoice.objects.get(pk=invoice.pk)


def status(customer: Customer) -> str:
    return Customer.objects.get(pk=customer.pk).status


@pytest.fixture
def synced(sim: SimulatorInfo, settings: Any) -> SimulatorInfo:
    """The user sync delivers to the simulator."""
    settings.SOLUSIO_API_URL, settings.SOLUSIO_API_TOKEN = sim.url, sim.token
    settings.SOLUSIO_VERIFY_TLS = False
    return sim


def solusio_status(sim: SimulatorInfo, customer_id: int) -> str:
    state = sim.control.simulator.state  # type: ignore[union-attr]
    [user] = [u for u in state.users.values() if u["billing_user_id"] == customer_id]
    return str(user["status"])


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
    customers: list[Customer], ten_days: None, synced: SimulatorInfo
) -> None:
    ann = customers[0]
    issued_invoice(ann, 10)
    dunning.sweep(now=ISSUED + 10 * DAY)
    assert SyncRecord.objects.filter(customer_id=ann.pk, reason__contains="unpaid").exists()
    sync.deliver_pending(customer_id=ann.pk)
    assert solusio_status(synced, ann.pk) == "suspended"


def test_nothing_to_pay_is_paid_at_issue_and_nobody_is_dunned_over_it(
    client: SolusIOClient,
    customers: list[Customer],
    add_server: Callable[..., Any],
    usd: Currency,
    ten_days: None,
) -> None:
    oct_ = datetime(2026, 10, 1, tzinfo=UTC)
    ann, bob, cat = customers
    dan = Customer.objects.create(id=4, email="customer4@example.test", currency=usd)
    Customer.objects.filter(pk=ann.pk).update(billing_exempt=True)
    tiny = Discount.objects.create(name="Nearly all", multiplier=Decimal("0.000001"))
    cat.discounts.add(tiny)
    for user in (ann.pk, cat.pk, dan.pk):
        add_server(user, 1, oct_, oct_ + timedelta(hours=700))  # 4,900 tokens: $4.90
    add_server(bob.pk, 7, oct_)  # a free plan, nothing else
    summary = close.close_cycle(
        period=period_of_month(2026, 10, "UTC"),
        client=client,
        now=datetime(2029, 1, 1, tzinfo=UTC),
        auto_issue=True,
    )
    assert summary.issued == 4
    invoices = {i.customer_id: i for i in Invoice.objects.all()}
    for customer in (ann, bob, cat):  # exempt, free plan only, discounted to 0.00
        invoice = invoices[customer.pk]
        assert invoice.total == 0
        assert invoice.tokens > 0 or customer is bob
        assert invoice.status == InvoiceStatus.PAID
        assert invoice.number is not None
        assert invoice.paid_at == invoice.issued_at
    real = invoices[dan.pk]
    assert (real.status, real.total, real.paid_at) == (InvoiceStatus.ISSUED, Decimal("4.90"), None)
    assert real.issued_at is not None

    later = real.issued_at + 30 * DAY
    assert list(selectors.overdue_invoices(later, 10)) == [real]
    assert dunning.sweep(now=later) == 1
    assert [status(c) for c in (ann, bob, cat, dan)] == ["active"] * 3 + ["suspended"]
    assert list(DunningEvent.objects.values_list("customer_id", flat=True)) == [dan.pk]


def test_a_zero_invoice_is_never_overdue_even_if_left_issued(
    customers: list[Customer], ten_days: None
) -> None:
    ann, bob, _ = customers
    issued_invoice(bob, 10)
    zero = Invoice.objects.create(  # issued before the rule existed: still "issued"
        customer=ann,
        period=date(2026, 10, 1),
        period_start=datetime(2026, 10, 1, tzinfo=UTC),
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        currency="USD",
        status=InvoiceStatus.ISSUED,
        number=99,
        issued_at=ISSUED,
        generated_at=ISSUED,
    )
    Invoice.objects.filter(pk=zero.pk).update(issued_at=ISSUED - 30 * DAY)
    assert [i.customer_id for i in selectors.overdue_invoices(ISSUED + 30 * DAY, 10)] == [bob.pk]
    assert dunning.sweep(now=ISSUED + 30 * DAY) == 1
    assert (status(ann), status(bob)) == ("active", "suspended")


def test_staff_overdue_filters_and_the_portal_show_a_zero_invoice_paid(
    drafts: list[Invoice], ten_days: None, admin_client: Client, sim: Any, settings: Any
) -> None:
    settings.SOLUSIO_API_URL, settings.SOLUSIO_API_TOKEN = (
        sim.url,
        sim.token,
    )  # the portal's preview
    Invoice.objects.filter(pk=drafts[0].pk).update(subtotal=0, tax_total=0, total=0)
    invoice_states.issue_invoices(invoice_ids=[d.pk for d in drafts[:2]], now=ISSUED - 30 * DAY)
    zero, owed = (Invoice.objects.get(pk=d.pk) for d in drafts[:2])
    assert (zero.status, zero.paid_at) == (InvoiceStatus.PAID, ISSUED - 30 * DAY)
    assert owed.status == InvoiceStatus.ISSUED
    api = staff_client(Invoice, actions=["view"])
    listed = body(api.get("/api/v1/invoices/?overdue=true"))
    assert [row["id"] for row in listed["results"]] == [owed.pk]
    page = admin_client.get("/admin/usage/invoice/?overdue=yes")
    assert [i.pk for i in page.context["cl"].result_list] == [owed.pk]
    # The API and the customer's own page show the zero invoice as staff see it: paid.
    assert body(api.get(f"/api/v1/invoices/{zero.pk}/"))["status"] == "paid"
    user = User.objects.create_user(username="customer:1", password="x")
    Customer.objects.filter(pk=zero.customer_id).update(user=user)
    portal = Client()
    portal.force_login(user)
    rows = portal.get("/account/invoices/").context["invoices"]
    assert [(i.pk, i.get_status_display()) for i in rows] == [(zero.pk, "Paid")]


def test_a_dunning_step_the_sync_cannot_deliver_is_logged_failed_once(
    customers: list[Customer], ten_days: None, synced: SimulatorInfo
) -> None:
    ann = customers[0]
    october = issued_invoice(ann, 10)
    assert dunning.sweep(now=ISSUED + 10 * DAY) == 1
    synced.control.fail_next("error", 1, method="POST", path="/users", status=422)
    assert sync.deliver_pending(customer_id=ann.pk).stopped is sync.Step.PARKED

    assert dunning.sweep(now=ISSUED + 11 * DAY) == 0
    failed, suspended = DunningEvent.objects.all()
    assert (failed.action, suspended.action) == (DunningAction.FAILED, DunningAction.SUSPENDED)
    assert failed.invoice_id == october.pk
    assert failed.sync_record_id == suspended.sync_record_id is not None
    assert failed.reason.startswith("the suspension did not reach SolusIO (user sync parked)")
    assert "422" in failed.reason
    dunning.sweep(now=ISSUED + 12 * DAY)
    assert DunningEvent.objects.filter(action=DunningAction.FAILED).count() == 1  # once

    # Paying still lifts dunning's own suspension; its change waits behind the parked one.
    invoice_states.mark_paid(invoice_id=october.pk, now=ISSUED + 13 * DAY)
    assert status(ann) == CustomerStatus.ACTIVE
    assert dunning.note_undelivered(now=ISSUED + 14 * DAY) == 1
    newest = DunningEvent.objects.first()
    assert newest is not None
    assert newest.reason == (
        "the reactivation did not reach SolusIO (user sync parked): behind a parked one"
    )
    # Staff fix and retry: both changes arrive in order, nothing more is logged.
    assert sync.retry_parked(customer_ids=[ann.pk]) == 1
    sync.deliver_pending(customer_id=ann.pk)
    assert not SyncRecord.objects.exclude(state=SyncRecordState.DONE).exists()
    assert dunning.note_undelivered(now=ISSUED + 15 * DAY) == 0
    assert solusio_status(synced, ann.pk) == "active"
    assert list(DunningEvent.objects.values_list("action", flat=True)) == [
        "failed",
        "reactivated",
        "failed",
        "suspended",
    ]
