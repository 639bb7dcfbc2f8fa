"""Issued invoices for the payments tests and the bank statement samples' cast."""

from datetime import UTC, date, datetime
from decimal import Decimal

from pricing.models import Currency
from usage import invoice_states
from usage.models import Invoice
from usage.selectors import PricingContext
from users.models import Customer

ISSUED = datetime(2026, 11, 1, 1, tzinfo=UTC)


def issue_invoice(
    customer: Customer,
    month: int,
    total: str,
    at: datetime = ISSUED,
    *,
    priced: bool = False,
) -> Invoice:
    """An issued USD invoice of `total` for `customer` and `month` of 2026; `priced` gives
    it the customer's pricing snapshot (pages and e-mails write money from it)."""
    invoice = Invoice.objects.create(
        customer=customer,
        period=date(2026, month, 1),
        period_start=datetime(2026, month, 1, tzinfo=UTC),
        period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
        currency="USD",
        subtotal=Decimal(total),
        total=Decimal(total),
        snapshot=PricingContext(at).snapshot(customer).as_json() if priced else {},
        generated_at=at,
    )
    invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=at)
    return Invoice.objects.get(pk=invoice.pk)


def sample_invoices(usd: Currency, *, priced: bool = False) -> dict[int, Invoice]:
    """INV-000001..6 as the files in payments/tests/data expect them, by number (numbers
    follow the issue order in a fresh database)."""
    ann = Customer.objects.create(
        id=1, email="ann@example.test", name="Ann Example", company_name="Example GmbH",
        currency=usd,
    )  # fmt: skip
    bob = Customer.objects.create(id=2, email="bob@example.test", name="Bob Builder", currency=usd)
    carol = Customer.objects.create(
        id=3, email="carol@example.test", name="Carol Jones", currency=usd
    )
    made = [
        issue_invoice(customer, month, total, priced=priced)
        for customer, month, total in (
            (ann, 9, "100.00"),
            (bob, 9, "50.00"),
            (ann, 10, "75.25"),
            (bob, 10, "30.00"),
            (carol, 9, "30.00"),
            (carol, 10, "42.42"),
        )
    ]
    by_number = {invoice.number or 0: invoice for invoice in made}
    assert sorted(by_number) == [1, 2, 3, 4, 5, 6]
    return by_number
