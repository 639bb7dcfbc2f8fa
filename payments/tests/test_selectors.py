"""What staff and customers read agrees with the services' money, whatever was paid: the
list annotation, the per-invoice reads and the customer's balance and credit."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import selectors, services
from payments.models import Allocation, Payment
from payments.tests.conftest import ISSUED, received
from usage.models import Invoice
from users.models import Customer

D = Decimal


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    totals=st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=4),
    payments=st.lists(st.integers(min_value=1, max_value=60_000), min_size=0, max_size=5),
)
def test_reads_agree_with_the_services(
    customer: Customer, issue: Callable[..., Invoice], totals: list[int], payments: list[int]
) -> None:
    Allocation.objects.all().delete()
    Payment.objects.all().delete()
    Invoice.objects.all().delete()
    for i, cents in enumerate(totals):
        issue(customer, 1 + i, str(D(cents) / 100), at=ISSUED + timedelta(days=i))
    for n, cents in enumerate(payments):
        received(customer, str(D(cents) / 100), f"P{n}", at=ISSUED + timedelta(days=10))
    owed = D(0)
    for invoice in selectors.with_paid(Invoice.objects.all()):
        plain = Invoice.objects.get(pk=invoice.pk)  # no annotation: the reads query
        assert selectors.balance_of(invoice) == services.invoice_balance(plain)
        assert selectors.balance_of(plain) == services.invoice_balance(plain)
        assert selectors.paid_of(invoice) == selectors.paid_of(plain)
        assert selectors.paid_of(invoice) + selectors.balance_of(invoice) == invoice.total
        assert sum((line.amount for line in selectors.paid_lines(plain)), D(0)) == (
            selectors.paid_of(plain)
        )
        owed += selectors.balance_of(invoice)
    [usd] = selectors.balances(customer.pk)
    credit = services.credit(customer.pk, "USD")
    assert (usd.owed, usd.credit) == (owed, credit)
    # Received less invoiced is what the customer is ahead (credit) or behind (owed).
    assert (
        usd.credit - usd.owed == sum(map(D, payments), D(0)) / 100 - sum(map(D, totals), D(0)) / 100
    )
    assert min(usd.owed, usd.credit) == 0
