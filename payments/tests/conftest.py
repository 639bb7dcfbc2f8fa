"""Customers with issued invoices to pay."""

from collections.abc import Callable

import pytest

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
    """An issued USD invoice of `total` for `customer` and `month` of 2026."""
    return issue_invoice
