"""Customers with issued invoices to pay."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from payments import services
from pricing.models import Currency
from usage import invoice_states, selectors
from usage.models import Invoice
from users.models import Customer

ISSUED = datetime(2026, 11, 1, 1, tzinfo=UTC)


@pytest.fixture
def customer(usd: Currency) -> Customer:
    return Customer.objects.create(id=1, email="ann@example.test", currency=usd)


@pytest.fixture
def other(usd: Currency) -> Customer:
    return Customer.objects.create(id=2, email="bob@example.test", currency=usd)


@pytest.fixture
def issue() -> Callable[..., Invoice]:
    """An issued USD invoice of `total` for `customer` and `month` of 2026."""

    def make(customer: Customer, month: int, total: str, at: datetime = ISSUED) -> Invoice:
        invoice = Invoice.objects.create(
            customer=customer,
            period=date(2026, month, 1),
            period_start=datetime(2026, month, 1, tzinfo=UTC),
            period_end=datetime(2026, month + 1, 1, tzinfo=UTC),
            currency="USD",
            subtotal=Decimal(total),
            total=Decimal(total),
            generated_at=at,
            # The customer's prices as a close would freeze them (PDFs, e-mails read them).
            snapshot=selectors.PricingContext(at).snapshot(customer).as_json(),
        )
        invoice_states.issue_invoices(invoice_ids=[invoice.pk], now=at)
        return Invoice.objects.get(pk=invoice.pk)

    return make


def received(
    customer: Customer,
    amount: str,
    reference: str = "",
    *,
    at: datetime = ISSUED,
    method: str = "bank_transfer",
) -> services.Recorded:
    """`amount` USD from `customer`, recorded (and processed) at `at`."""
    return services.record_payment(
        customer_id=customer.pk,
        amount=Decimal(amount),
        currency="USD",
        method=method,
        received_at=at,
        reference=reference,
        now=at,
    )


# The fake Stripe with the bridge's settings pointed at it (payments/fake_stripe/testing.py).
from payments.fake_stripe.testing import fake_stripe  # noqa: E402, F401
