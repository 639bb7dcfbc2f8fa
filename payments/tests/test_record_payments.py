"""record_payments (the bulk path a bank statement uses) leaves exactly the state that
record_payment one by one leaves: payments, allocations, paid invoices, outcomes."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import services
from payments.models import Allocation, Payment, PaymentMethod
from payments.tests.conftest import ISSUED
from usage.models import Invoice
from users.models import Customer

pytestmark = pytest.mark.django_db
D = Decimal

items = st.lists(
    st.tuples(
        st.integers(0, 1),  # customer
        st.integers(1, 15_000),  # cents
        st.sampled_from(["USD", "USD", "USD", "EUR"]),
        st.one_of(st.none(), st.integers(0, 5)),  # which invoice it names
        st.integers(0, 6),  # reference: some repeat (the same, or a conflict)
        st.integers(0, 3),  # days after the issue it was received
    ),
    max_size=12,
)


def state() -> tuple[object, ...]:
    payments = sorted(
        Payment.objects.values_list("reference", "customer_id", "amount", "currency", "received_at")
    )
    allocations = sorted(
        Allocation.objects.values_list("payment__reference", "invoice_id", "amount", "allocated_at")
    )
    invoices = sorted(Invoice.objects.values_list("id", "status", "paid_at"))
    return payments, allocations, invoices


def outcome(result: services.Recorded | services.PaymentError) -> tuple[object, ...]:
    if isinstance(result, services.PaymentError):
        return type(result).__name__, str(result)
    return result.payment.reference, result.created, sorted(result.settled)


@pytest.fixture
def invoices(customer: Customer, other: Customer, issue: Callable[..., Invoice]) -> list[Invoice]:
    """Three open invoices each, and money already there: a part payment."""
    made = [
        issue(c, month, total)
        for c in (customer, other)
        for month, total in ((9, "40.00"), (10, "25.50"), (11, "99.99"))
    ]
    services.record_payment(
        customer_id=customer.pk, amount=D("50.00"), currency="USD",
        method=PaymentMethod.BANK_TRANSFER, received_at=ISSUED, reference="before",
    )  # fmt: skip
    return made


def one_by_one(batch: list[services.PaymentIn]) -> list[tuple[object, ...]]:
    outcomes = []
    for item in batch:
        try:
            recorded = services.record_payment(
                customer_id=item.customer_id, amount=item.amount, currency=item.currency,
                method=item.method, received_at=item.received_at, reference=item.reference,
                invoice_id=item.invoice_id,
            )  # fmt: skip
        except services.PaymentError as exc:
            outcomes.append(outcome(exc))
        else:
            outcomes.append(outcome(recorded))
    return outcomes


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items)
def test_bulk_equals_one_by_one(
    customer: Customer, other: Customer, invoices: list[Invoice], drawn: list
) -> None:
    # Each example starts from the fixture's state and leaves it so.
    with transaction.atomic():
        batch = [
            services.PaymentIn(
                customer_id=(customer, other)[who].pk,
                amount=D(cents) / 100,
                currency=currency,
                method=PaymentMethod.BANK_TRANSFER,
                received_at=ISSUED + timedelta(days=days),
                reference=f"ref-{ref}",
                invoice_id=None if named is None else invoices[named].pk,
            )
            for who, cents, currency, named, ref, days in drawn
        ]
        start = transaction.savepoint()
        singly = one_by_one(batch)
        expected = state()
        transaction.savepoint_rollback(start)
        together = [outcome(r) for r in services.record_payments(batch)]
        assert together == singly
        assert state() == expected
        transaction.set_rollback(True)


def test_bad_items_are_refused_alone(customer: Customer, issue: Callable[..., Invoice]) -> None:
    invoice = issue(customer, 10, "30.00")
    good = services.PaymentIn(
        customer_id=customer.pk, amount=D("30.00"), currency="USD",
        method=PaymentMethod.BANK_TRANSFER, received_at=ISSUED, reference="A",
        invoice_id=invoice.pk,
    )  # fmt: skip
    results = services.record_payments(
        [
            services.PaymentIn(**{**good.__dict__, "amount": D("-1"), "reference": "B"}),
            services.PaymentIn(**{**good.__dict__, "customer_id": 999, "reference": "C"}),
            services.PaymentIn(**{**good.__dict__, "method": "cash", "reference": "D"}),
            good,
            good,  # the same transfer twice in one batch: recorded once
        ]
    )
    messages = [str(r) if isinstance(r, services.PaymentError) else r for r in results]
    assert messages[:3] == [
        "the amount must be a positive decimal",
        "no customer 999",
        "unknown payment method 'cash'",
    ]
    first, again = results[3], results[4]
    assert isinstance(first, services.Recorded)
    assert isinstance(again, services.Recorded)
    assert (first.created, first.settled, again.created) == (True, [invoice.pk], False)
    assert again.payment.pk == first.payment.pk
    assert Payment.objects.count() == 1
