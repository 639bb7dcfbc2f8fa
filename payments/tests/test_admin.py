"""The payments admin: recording goes through the service (never a raw save), payments are
never edited or deleted, refunds need their own permission; invoices and customers show
paid, balance, credit and the dunning step. Each with no, view-only and the right permission."""

import csv
import io
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from bridge.tests.test_staff_permissions import (
    Cast,
    cast,  # noqa: F401 - a fixture
    offered_actions,
    signed_in,
)
from payments import services
from payments.models import Allocation, Payment, PaymentMethod
from payments.tests.conftest import ISSUED, received
from usage import invoice_states
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
PAYMENTS = "/admin/payments/payment/"
ADD = PAYMENTS + "add/"


def form(customer: Customer, amount: str, reference: str, **extra: object) -> dict[str, object]:
    return {
        "customer": customer.pk,
        "amount": amount,
        "currency": "USD",
        "method": "bank_transfer",
        "reference": reference,
        "received_at_0": "2026-11-03",
        "received_at_1": "10:00:00",
        "invoice": "",
        "note": "",
        **extra,
    }


def page(user: User, url: str) -> str:
    response = signed_in(user).get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode().replace("\xa0", " ")


def test_recording_by_hand_goes_through_the_service_and_needs_add(
    cast: Cast,  # noqa: F811 - the fixture imported above
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    older = issue(customer, 10, "30.00")
    invoice = issue(customer, 11, "100.00")
    for user in (cast.nobody, cast.viewer):
        assert signed_in(user).get(ADD).status_code == 403
        assert signed_in(user).post(ADD, form(customer, "40", "B-1")).status_code == 403
    assert not Payment.objects.exists()

    clerk = cast.granted("payments.add_payment")
    asked = page(clerk, f"{ADD}?invoice={invoice.pk}")
    assert 'name="amount" value="100.0000"' in asked  # the invoice's balance, offered
    done = signed_in(clerk).post(ADD, form(customer, "40.00", "B-1", invoice=invoice.pk))
    assert done.status_code == 302
    payment = Payment.objects.get()
    assert done["Location"] == f"{PAYMENTS}{payment.pk}/change/"
    assert (payment.amount, payment.created_by_id) == (Decimal("40.00"), clerk.pk)
    # The invoice named first, not the older one: the service's rule.
    assert list(Allocation.objects.values_list("invoice_id", "amount")) == [
        (invoice.pk, Decimal("40.00"))
    ]
    assert Invoice.objects.get(pk=older.pk).status == InvoiceStatus.ISSUED

    conflict = signed_in(clerk).post(ADD, form(customer, "41.00", "B-1"))
    assert conflict.status_code == 200
    assert "already recorded as 40.0000 USD" in conflict.content.decode()
    wrong = signed_in(clerk).post(ADD, form(customer, "5", "B-2", invoice=9999))
    assert "invoice 9999 is not customer 1" in wrong.content.decode()
    bad = signed_in(clerk).post(ADD, form(customer, "5.00001", "B-3"))
    assert "no more than 4 decimal places" in bad.content.decode()
    assert Payment.objects.count() == 1


def test_payments_are_read_only_once_recorded_and_listed_with_their_display(
    cast: Cast,  # noqa: F811
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    issue(customer, 10, "100.00")
    payment = received(customer, "1234.50", "B-1").payment
    assert signed_in(cast.nobody).get(PAYMENTS).status_code == 403
    listed = page(cast.viewer, PAYMENTS)
    assert "$1,234.50 USD" in listed
    assert "INV-000001" in listed
    assert page(cast.viewer, PAYMENTS + "?q=ann@example").count("B-1") >= 1
    assert "B-1" not in page(cast.viewer, PAYMENTS + "?q=nobody@example")
    assert "B-1" in page(cast.viewer, PAYMENTS + "?method__exact=bank_transfer")
    assert "B-1" not in page(cast.viewer, PAYMENTS + "?method__exact=card")

    owner = cast.granted(
        "payments.add_payment", "payments.change_payment", "payments.delete_payment"
    )
    change = f"{PAYMENTS}{payment.pk}/change/"
    shown = page(owner, change)
    assert "$1,134.50 USD" in shown  # not on any invoice: credit
    assert 'name="_save"' not in shown
    assert signed_in(owner).post(change, {"amount": "1"}).status_code == 403
    assert (
        signed_in(owner).post(f"{PAYMENTS}{payment.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Payment.objects.get().amount == Decimal("1234.50")

    assert offered_actions(cast.nobody, PAYMENTS) == set()
    assert offered_actions(cast.viewer, PAYMENTS) == {"export_csv"}
    exported = signed_in(cast.viewer).post(
        PAYMENTS, {"action": "export_csv", "_selected_action": [payment.pk]}
    )
    [row] = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert (row["amount"], row["allocated"], row["unallocated"]) == (
        "1234.5000",
        "100.0000",
        "1134.5000",
    )


def test_a_refund_needs_the_refund_permission(
    cast: Cast,  # noqa: F811
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue(customer, 10, "100.00")
    services.pay_balance_by_hand(invoice_id=invoice.pk, now=ISSUED)
    invoice_states.void_invoice(invoice_id=invoice.pk, reason="Billed twice")
    note = Invoice.objects.get(pk=invoice.pk).credit_note
    url = f"{PAYMENTS}refund/{note.pk}/"
    body = {
        "amount": "100.00",
        "method": "bank_transfer",
        "reference": "R-1",
        "received_at_0": "2026-11-20",
        "received_at_1": "09:00:00",
        "note": "",
    }
    for user in (cast.nobody, cast.viewer, cast.granted("payments.add_payment")):
        assert signed_in(user).post(url, body).status_code == 403
    credit_note_page = page(cast.viewer, f"/admin/usage/creditnote/{note.pk}/change/")
    assert "No refunds." in credit_note_page
    assert url in credit_note_page

    payer = cast.granted("payments.refund_payment")
    asked = page(payer, url)
    assert "holds $100.00 USD of credit" in asked
    too_much = signed_in(payer).post(url, {**body, "amount": "100.01"})
    assert "left to refund" in too_much.content.decode()
    done = signed_in(payer).post(url, body)
    assert done.status_code == 302
    refund = Payment.objects.get(amount__lt=0)
    assert (refund.amount, refund.credit_note_id) == (Decimal("-100.00"), note.pk)
    assert services.credit(customer.pk, "USD") == 0
    assert "R-1" in page(cast.viewer, f"/admin/usage/creditnote/{note.pk}/change/")


def test_invoices_and_customers_show_paid_balance_credit_and_the_dunning_step(
    cast: Cast,  # noqa: F811
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue(customer, 10, "100.00")
    received(customer, "40.00", "ch_1", method=PaymentMethod.CARD)
    listed = page(cast.viewer, "/admin/usage/invoice/")
    assert '<td class="field-paid_display">$40.00 USD</td>' in listed
    assert '<td class="field-balance_display">$60.00 USD</td>' in listed
    detail = page(cast.viewer, f"/admin/usage/invoice/{invoice.pk}/change/")
    assert "ch_1" in detail
    assert '<td class="balance"><strong>$60.00 USD</strong></td>' in detail

    customer_page = page(cast.viewer, f"/admin/users/customer/{customer.pk}/change/")
    assert "<td>USD</td><td>$60.00 USD</td><td>$0.00 USD</td>" in customer_page
    assert "nothing overdue is being chased" in customer_page
    # Without the payments' view permission, no payments panel.
    no_payments = cast.granted()
    no_payments.user_permissions.remove(
        *no_payments.user_permissions.filter(content_type__app_label="payments")
    )
    assert "Payments, balance and reminders" not in page(
        no_payments, f"/admin/users/customer/{customer.pk}/change/"
    )


def test_sending_failed_reminders_again_needs_change_reminder(
    cast: Cast,  # noqa: F811
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    from datetime import UTC, datetime

    from bridge.models import DeliveryState
    from payments import reminders
    from payments.models import Reminder

    issue(customer, 10, "100.00")
    reminders.record_due(now=datetime(2026, 11, 16, tzinfo=UTC))
    Reminder.objects.update(state=DeliveryState.FAILED, attempts=6, last_error="550 no user")
    [reminder] = Reminder.objects.all()
    url = "/admin/payments/reminder/"
    for user in (cast.nobody, cast.viewer):
        assert "retry" not in offered_actions(user, url)
        signed_in(user).post(url, {"action": "retry", "_selected_action": [reminder.pk]})
    assert Reminder.objects.get().state == DeliveryState.FAILED
    assert "550 no user" in page(cast.viewer, url)

    allowed = cast.granted("payments.change_reminder")
    assert "retry" in offered_actions(allowed, url)
    signed_in(allowed).post(url, {"action": "retry", "_selected_action": [reminder.pk]})
    again = Reminder.objects.get()
    assert (again.state, again.attempts, again.last_error) == (DeliveryState.PENDING, 0, "")
    form = page(allowed, f"{url}{reminder.pk}/change/")
    assert 'name="state"' not in form  # still read-only
    assert "1 day after the due date" in page(allowed, url)
