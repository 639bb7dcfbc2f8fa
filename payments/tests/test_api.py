"""The staff API's payments: list and filters, record (201, 200 again, 409, 400), refunds,
CSV, and the invoices' paid and balance; each with no, view-only and the right permission."""

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from bridge.tests.test_staff_permissions import (
    Cast,
    cast,  # noqa: F401 - a fixture
)
from payments import services
from payments.models import Payment, PaymentMethod
from payments.tests.conftest import received
from pricing.tests.api_helpers import body, token_client
from usage import invoice_states
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
PAYMENTS = "/api/v1/payments/"
REFUNDS = "/api/v1/refunds/"


def bank(customer: Customer, amount: str, reference: str, **extra: Any) -> dict[str, Any]:
    return {
        "customer": customer.pk,
        "amount": amount,
        "currency": "usd",
        "method": "bank_transfer",
        "reference": reference,
        "received_at": "2026-11-03T10:00:00Z",
        **extra,
    }


def test_recording_needs_add_and_answers_201_then_200_then_409(
    cast: Cast,  # noqa: F811 - the fixture imported above
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue(customer, 10, "100.00")
    for user in (cast.nobody, cast.viewer):
        refused = token_client(user).post(PAYMENTS, bank(customer, "40", "B-1"), format="json")
        assert refused.status_code == 403
    assert token_client(cast.nobody).get(PAYMENTS).status_code == 403
    assert not Payment.objects.exists()

    clerk = token_client(cast.granted("payments.add_payment"))
    first = clerk.post(PAYMENTS, bank(customer, "40.00", "B-1"), format="json")
    assert first.status_code == 201, first.content
    data = body(first)
    assert (data["amount"], data["currency"], data["method"]) == (
        "40.0000",
        "USD",
        "bank_transfer",
    )
    assert data["allocations"] == [
        {
            "invoice": invoice.pk,
            "invoice_number": "INV-000001",
            "amount": "40.0000",
            "allocated_at": "2026-11-03T10:00:00Z",
        }
    ]
    assert data["unallocated"] == "0.0000"
    again = clerk.post(PAYMENTS, bank(customer, "40.00", "B-1"), format="json")
    assert (again.status_code, body(again)["id"]) == (200, data["id"])
    conflict = clerk.post(PAYMENTS, bank(customer, "41.00", "B-1"), format="json")
    assert conflict.status_code == 409
    assert set(body(conflict)) == {"message", "errors"}
    assert "already recorded as 40.0000 USD" in body(conflict)["message"]

    for bad, message in [
        (bank(customer, "1.00001", "B-2"), "amount: Ensure that there are no more than 4"),
        (bank(customer, "0", "B-2"), "amount: Ensure this value is greater than or equal"),
        (bank(customer, "5", "B-2", method="cash"), 'method: "cash" is not a valid choice.'),
        (bank(customer, "5", "B-2", invoice=999), "invoice 999 is not customer 1's"),
        (bank(customer, "5", "B-2", currency="U1D"), "'U1D' is not an ISO 4217"),
        ({**bank(customer, "5", "B-2"), "customer": 77}, "no customer 77"),
    ]:
        answer = clerk.post(PAYMENTS, bad, format="json")
        assert answer.status_code == 400, (bad, answer.content)
        assert body(answer)["message"].startswith(message), body(answer)
    assert Payment.objects.count() == 1


def test_the_list_filters_and_the_invoice_shows_paid_and_balance(
    cast: Cast,  # noqa: F811
    customer: Customer,
    other: Customer,
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue(customer, 10, "100.00")
    clerk = token_client(cast.granted("payments.add_payment"))
    clerk.post(PAYMENTS, bank(customer, "40", "B-1", invoice=invoice.pk), format="json")
    clerk.post(
        PAYMENTS,
        {**bank(other, "5", "C-1"), "method": "card", "received_at": "2026-12-01T00:00:00Z"},
        format="json",
    )
    viewer = token_client(cast.viewer)

    def ids(query: str) -> list[str]:
        answer = viewer.get(PAYMENTS + query)
        assert answer.status_code == 200, answer.content
        return [row["reference"] for row in body(answer)["results"]]

    assert ids("") == ["C-1", "B-1"]  # newest first
    assert ids(f"?customer={customer.pk}") == ["B-1"]
    assert ids(f"?invoice={invoice.pk}") == ["B-1"]
    assert ids("?method=card") == ["C-1"]
    assert ids("?currency=usd") == ["C-1", "B-1"]
    assert ids("?received_from=2026-11-30T00:00:00Z") == ["C-1"]
    assert ids("?received_before=2026-11-30T00:00:00Z") == ["B-1"]
    for bad in ("?customer=x", "?method=cash", "?currency=DOLLARS", "?received_from=soon"):
        assert viewer.get(PAYMENTS + bad).status_code == 400, bad

    listed = body(viewer.get(f"/api/v1/invoices/?customer={customer.pk}"))["results"]
    assert [(row["paid"], row["balance"]) for row in listed] == [("40.0000", "60.0000")]
    one = body(viewer.get(f"/api/v1/invoices/{invoice.pk}/"))
    assert (one["total"], one["paid"], one["balance"]) == ("100.0000", "40.0000", "60.0000")

    exported = viewer.get(PAYMENTS + "export/?customer=1")
    assert exported["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["reference"], r["amount"], r["allocated"], r["invoices"]) for r in rows] == [
        ("B-1", "40.0000", "40.0000", "INV-000001")
    ]
    assert token_client(cast.nobody).get(PAYMENTS + "export/").status_code == 403


def test_a_refund_needs_its_own_permission_and_pays_out_credit_only(
    cast: Cast,  # noqa: F811
    customer: Customer,
    issue: Callable[..., Invoice],
) -> None:
    invoice = issue(customer, 10, "100.00")
    received(customer, "100.00", "ch_1", method=PaymentMethod.CARD)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID
    invoice_states.void_invoice(invoice_id=invoice.pk, reason="Billed twice")
    note = Invoice.objects.get(pk=invoice.pk).credit_note
    refund = {"credit_note": note.pk, "amount": "30.00", "method": "card", "reference": "re_1"}
    for user in (cast.nobody, cast.viewer, cast.granted("payments.add_payment")):
        assert token_client(user).post(REFUNDS, refund, format="json").status_code == 403
    payer = token_client(cast.granted("payments.refund_payment"))
    made = payer.post(REFUNDS, refund, format="json")
    assert made.status_code == 201, made.content
    assert (body(made)["amount"], body(made)["credit_note"]) == ("-30.0000", note.pk)
    assert payer.post(REFUNDS, refund, format="json").status_code == 200  # the same one
    too_much = payer.post(REFUNDS, {**refund, "amount": "80", "reference": "re_2"}, format="json")
    assert too_much.status_code == 400
    assert "left to refund" in body(too_much)["message"]
    missing = payer.post(REFUNDS, {**refund, "credit_note": 999}, format="json")
    assert body(missing) == {
        "message": "credit_note: No such credit note.",
        "errors": {"credit_note": ["No such credit note."]},
    }
    assert services.credit(customer.pk, "USD") == Decimal("70.00")
    listed = body(token_client(cast.viewer).get(REFUNDS))["results"]
    assert [row["reference"] for row in listed] == ["re_1"]


def test_reminders_are_listed_for_staff_who_may_view_them(
    cast: Cast,  # noqa: F811
    customer: Customer,
    other: Customer,
    issue: Callable[..., Invoice],
) -> None:
    from datetime import UTC, datetime

    from payments import reminders

    mine = issue(customer, 10, "100.00")
    issue(other, 10, "5.00")
    assert reminders.record_due(now=datetime(2026, 11, 16, tzinfo=UTC)) == 2
    assert token_client(cast.nobody).get("/api/v1/reminders/").status_code == 403
    viewer = token_client(cast.viewer)
    listed = body(viewer.get(f"/api/v1/reminders/?customer={customer.pk}"))["results"]
    assert [(r["invoice_number"], r["number"], r["days"], r["state"]) for r in listed] == [
        ("INV-000001", 2, 1, "pending")
    ]
    assert body(viewer.get(f"/api/v1/reminders/?invoice={mine.pk}"))["count"] == 1
    assert body(viewer.get("/api/v1/reminders/?state=sent"))["count"] == 0
    assert viewer.get("/api/v1/reminders/?state=lost").status_code == 400
