"""Payments settle invoices exactly: partial, over, twice, refunded, released on void."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import services
from payments.models import Allocation, Payment, PaymentMethod
from payments.tests.conftest import ISSUED
from usage import invoice_states
from usage.models import Invoice, InvoiceStatus
from users.models import Customer

pytestmark = pytest.mark.django_db
D = Decimal
LATER = ISSUED + timedelta(days=3)


def pay(customer: Customer, amount: str, reference: str = "", **kw: object) -> services.Recorded:
    return services.record_payment(
        customer_id=customer.pk,
        amount=D(amount),
        currency=kw.pop("currency", "USD"),  # type: ignore[arg-type]
        method=kw.pop("method", PaymentMethod.BANK_TRANSFER),  # type: ignore[arg-type]
        received_at=LATER,
        reference=reference,
        **kw,  # type: ignore[arg-type]
    )


def fresh(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


def test_partial_payment_leaves_the_invoice_open_with_its_balance(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "100.00")
    recorded = pay(customer, "40.00", "BANK-1")
    assert recorded.created
    assert recorded.settled == []
    assert fresh(invoice).status == InvoiceStatus.ISSUED
    assert services.invoice_balance(invoice) == D("60.00")
    pay(customer, "60.00", "BANK-2")
    invoice = fresh(invoice)
    assert (invoice.status, invoice.paid_at) == (InvoiceStatus.PAID, LATER)
    assert services.invoice_balance(invoice) == 0


def test_the_same_reference_twice_records_nothing_twice(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    issue(customer, 10, "100.00")
    first = pay(customer, "30.00", "EVT-1", method=PaymentMethod.CARD)
    again = pay(customer, "30.00", "EVT-1", method=PaymentMethod.CARD)
    assert first.created
    assert not again.created
    assert again.payment.pk == first.payment.pk
    assert Payment.objects.count() == 1
    assert Allocation.objects.count() == 1
    # The same reference from another method is another payment.
    assert pay(customer, "30.00", "EVT-1").created


def test_a_reference_reused_with_another_amount_is_a_conflict(
    customer: Customer, other: Customer, issue: Callable[..., Invoice]
) -> None:
    pay(customer, "30.00", "EVT-1")
    with pytest.raises(services.PaymentConflict, match=r"already recorded as 30\.0000 USD"):
        pay(customer, "31.00", "EVT-1")
    with pytest.raises(services.PaymentConflict):
        pay(other, "30.00", "EVT-1")
    assert Payment.objects.count() == 1


def test_overpayment_is_credit_the_next_invoice_uses(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    october = issue(customer, 10, "80.00")
    pay(customer, "100.00", "BANK-1", invoice_id=october.pk)
    assert fresh(october).status == InvoiceStatus.PAID
    assert services.credit(customer.pk, "USD") == D("20.00")
    november = issue(customer, 11, "50.00", at=ISSUED + timedelta(days=30))
    assert fresh(november).total == D("50.00")  # the issued invoice is never changed
    assert services.invoice_balance(november) == D("30.00")
    assert services.credit(customer.pk, "USD") == 0
    assert Allocation.objects.get(invoice=november).amount == D("20.00")


def test_a_named_invoice_is_paid_first_then_the_oldest(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    october = issue(customer, 10, "10.00")
    november = issue(customer, 11, "10.00", at=ISSUED + timedelta(days=30))
    recorded = pay(customer, "15.00", "B1", invoice_id=november.pk)
    assert recorded.settled == [november.pk]
    assert services.invoice_balance(october) == D("5.00")


def test_void_of_a_paid_invoice_makes_its_money_credit_that_can_be_refunded(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "25.00")
    pay(customer, "25.00", "B1")
    invoice_states.void_invoice(invoice_id=invoice.pk, reason="Wrong plan", now=LATER)
    assert fresh(invoice).status == InvoiceStatus.VOID
    assert services.credit(customer.pk, "USD") == D("25.00")
    note = fresh(invoice).credit_note
    with pytest.raises(services.PaymentError, match=r"25\.0000 USD left to refund"):
        services.refund(
            credit_note_id=note.pk, amount=D("26.00"), method="bank_transfer", received_at=LATER
        )
    refunded = services.refund(
        credit_note_id=note.pk,
        amount=D("25.00"),
        method="bank_transfer",
        received_at=LATER,
        reference="OUT-1",
    )
    assert refunded.payment.amount == D("-25.00")
    assert services.credit(customer.pk, "USD") == 0
    with pytest.raises(services.PaymentError, match="left to refund"):
        services.refund(
            credit_note_id=note.pk, amount=D("1"), method="bank_transfer", received_at=LATER
        )


def test_mark_paid_is_a_manual_payment_of_the_balance_once(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "25.00")
    pay(customer, "5.00", "B1")
    invoice_states.mark_paid(invoice_id=invoice.pk, now=LATER)
    manual = Payment.objects.get(method=PaymentMethod.MANUAL)
    assert manual.amount == D("20.00")
    assert fresh(invoice).status == InvoiceStatus.PAID
    with pytest.raises(invoice_states.InvoiceStateError, match="paid, not open"):
        invoice_states.mark_paid(invoice_id=invoice.pk, now=LATER)


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("0", "USD", "positive decimal"),
        ("-1", "USD", "positive decimal"),
        ("1.00001", "USD", "4 decimal places"),
        ("1", "US", "ISO 4217"),
    ],
)
def test_bad_input_is_a_clear_error(
    customer: Customer, amount: str, currency: str, message: str
) -> None:
    with pytest.raises(services.PaymentError, match=message):
        pay(customer, amount, currency=currency)


def test_a_payment_in_another_currency_than_the_named_invoice_is_refused(
    customer: Customer, issue: Callable[..., Invoice]
) -> None:
    invoice = issue(customer, 10, "25.00")
    with pytest.raises(services.PaymentError, match="in USD, the payment in EUR"):
        pay(customer, "25.00", currency="EUR", invoice_id=invoice.pk)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    totals=st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=4),
    payments=st.lists(st.integers(min_value=1, max_value=60_000), min_size=1, max_size=5),
)
def test_money_is_conserved_and_never_over_allocated(
    customer: Customer, issue: Callable[..., Invoice], totals: list[int], payments: list[int]
) -> None:
    """Whatever arrives in whatever order: allocations never exceed a payment or an
    invoice, an invoice is paid exactly when covered, and received = allocated + credit."""
    Allocation.objects.all().delete()
    Payment.objects.all().delete()
    Invoice.objects.all().delete()
    invoices = [
        issue(customer, 1 + i, str(D(t) / 100), at=ISSUED + timedelta(days=i))
        for i, t in enumerate(totals)
    ]
    for n, cents in enumerate(payments):
        pay(customer, str(D(cents) / 100), f"P{n}")
    received = sum((D(c) / 100 for c in payments), D(0))
    allocated = D(0)
    for payment in Payment.objects.all():
        used = sum((a.amount for a in payment.allocations.all()), D(0))
        assert used <= payment.amount
        allocated += used
    for invoice in invoices:
        invoice = fresh(invoice)
        balance = services.invoice_balance(invoice)
        assert 0 <= balance <= invoice.total
        assert (invoice.status == InvoiceStatus.PAID) == (balance == 0)
    assert received == allocated + services.credit(customer.pk, "USD")
    owed = sum((services.invoice_balance(i) for i in invoices), D(0))
    # Credit is left only once every invoice is paid.
    assert owed == 0 or services.credit(customer.pk, "USD") == 0


def test_the_sweep_puts_credit_on_open_invoices_a_crash_left_unpaid(
    customer: Customer, other: Customer, issue: Callable[..., Invoice]
) -> None:
    pay(customer, "50.00", "B1")  # credit: no invoice yet
    owed = issue(customer, 10, "30.00")
    stranded = issue(other, 10, "20.00")
    # As if issuing had crashed before applying credit: the allocation is undone.
    Allocation.objects.filter(invoice=owed).delete()
    Invoice.objects.filter(pk=owed.pk).update(status=InvoiceStatus.ISSUED, paid_at=None)
    assert services.apply_open_credit(now=LATER) == [owed.pk]
    assert fresh(owed).status == InvoiceStatus.PAID
    assert fresh(stranded).status == InvoiceStatus.ISSUED  # no credit: left for dunning
    assert services.credit(customer.pk, "USD") == D("20.00")
    assert services.apply_open_credit(now=LATER) == []  # idempotent
