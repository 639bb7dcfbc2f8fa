"""Customers with issued invoices to pay."""

import functools
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from payments import services
from payments.tests.factories import ISSUED, issue_invoice
from pricing.models import Currency
from usage.models import Invoice
from users.models import Customer

__all__ = ["ISSUED"]


@pytest.fixture
def customer(usd: Currency) -> Customer:
    return Customer.objects.create(id=1, email="ann@example.test", currency=usd)


@pytest.fixture
def other(usd: Currency) -> Customer:
    return Customer.objects.create(id=2, email="bob@example.test", currency=usd)


@pytest.fixture
def issue() -> Callable[..., Invoice]:
    """An issued USD invoice of `total` for `customer` and `month` of 2026, priced: these
    tests render its pages, PDF and e-mails, which write money from the snapshot."""
    return functools.partial(issue_invoice, priced=True)


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
