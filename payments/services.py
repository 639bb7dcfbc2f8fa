"""Recording payments and refunds, and settling invoices with them.

Every change to a customer's money runs under that customer's row lock, so allocations
never exceed a payment or an invoice's balance however many webhooks, statement imports
and clerks act at once. Payments are unique on (method, reference): recording the same
one twice returns the first. No amount is rounded here: payments, allocations and invoice
totals are already exact in the currency's minor unit, and only subtracted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from payments.models import Allocation, Payment, PaymentMethod
from usage.models import CreditNote, Invoice, InvoiceStatus
from users.models import Customer

ZERO = Decimal(0)


class PaymentError(Exception):
    """Input that cannot be recorded (a stable, human message for the API and admin)."""


class PaymentConflict(PaymentError):
    """The reference is already recorded as a different payment."""


@dataclass(frozen=True)
class Recorded:
    payment: Payment
    created: bool
    settled: list[int] = field(default_factory=list)  # invoices this made paid


def record_payment(
    *,
    customer_id: int,
    amount: Decimal,
    currency: str,
    method: str,
    received_at: datetime,
    reference: str = "",
    invoice_id: int | None = None,
    note: str = "",
    user: AbstractBaseUser | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Record money received and settle the customer's open invoices with it: `invoice_id`
    first when given, then the oldest. What is left over is credit for the next invoice.
    Idempotent on (method, reference). `now` is when this is processed (dunning's clock);
    `received_at` when the money arrived (the invoice's paid date)."""
    amount = _positive(amount)
    currency = _currency(currency)
    if method not in PaymentMethod.values:
        raise PaymentError(f"unknown payment method {method!r}")
    reference = reference.strip()
    with transaction.atomic():
        _lock_customer(customer_id)
        if reference:
            existing = Payment.objects.filter(method=method, reference=reference).first()
            if existing is not None:
                return Recorded(_same(existing, customer_id, amount, currency), created=False)
        if invoice_id is not None:
            _check_invoice(invoice_id, customer_id, currency)
        payment = _create(
            customer_id=customer_id,
            amount=amount,
            currency=currency,
            method=method,
            reference=reference,
            received_at=received_at,
            note=note[:500],
            created_by=user if user is not None and user.is_authenticated else None,
        )
        settled = _allocate(customer_id, currency, paid_at=received_at, first=invoice_id)
        _reactivate(customer_id, settled, now)
    return Recorded(payment, created=True, settled=settled)


def pay_balance_by_hand(
    *,
    invoice_id: int,
    now: datetime | None = None,
    user: AbstractBaseUser | None = None,
    note: str = "Marked paid by staff",
) -> Recorded | None:
    """Staff's "mark paid": a manual payment of the invoice's open balance. None when
    there is nothing left to pay (a second click records nothing)."""
    now = now or timezone.now()
    with transaction.atomic():
        invoice = Invoice.objects.get(pk=invoice_id)
        _lock_customer(invoice.customer_id)
        if invoice.status != InvoiceStatus.ISSUED:
            raise PaymentError(f"{invoice.display_number} is {invoice.status}, not open")
        due = invoice_balance(invoice)
        if due <= 0:
            return None
        return record_payment(
            customer_id=invoice.customer_id,
            amount=due,
            currency=invoice.currency,
            method=PaymentMethod.MANUAL,
            received_at=now,
            invoice_id=invoice.pk,
            note=note,
            user=user,
            now=now,
        )


def refund(
    *,
    credit_note_id: int,
    amount: Decimal,
    method: str,
    received_at: datetime,
    reference: str = "",
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> Recorded:
    """Money paid back to a customer against a credit note: a negative payment, at most
    the customer's credit and what the credit note has left to refund."""
    amount = _positive(amount)
    if method not in PaymentMethod.values:
        raise PaymentError(f"unknown payment method {method!r}")
    reference = reference.strip()
    with transaction.atomic():
        note_row = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
        customer_id = note_row.invoice.customer_id
        _lock_customer(customer_id)
        if reference:
            existing = Payment.objects.filter(method=method, reference=reference).first()
            if existing is not None:
                return Recorded(
                    _same(existing, customer_id, -amount, note_row.currency), created=False
                )
        refunded = -(
            Payment.objects.filter(credit_note=note_row).aggregate(s=Sum("amount"))["s"] or ZERO
        )
        left = -note_row.total - refunded
        if amount > left:
            raise PaymentError(
                f"{note_row.display_number} has {left} {note_row.currency} left to refund"
            )
        available = credit(customer_id, note_row.currency)
        if amount > available:
            raise PaymentError(
                f"the customer has {available} {note_row.currency} of credit; a refund "
                "pays out credit only (void or correct the paid invoice first)"
            )
        payment = _create(
            customer_id=customer_id,
            amount=-amount,
            currency=note_row.currency,
            method=method,
            reference=reference,
            received_at=received_at,
            credit_note=note_row,
            note=note[:500],
            created_by=user if user is not None and user.is_authenticated else None,
        )
    return Recorded(payment, created=True)


def release_allocations(*, invoice_id: int, now: datetime | None = None) -> list[int]:
    """An invoice was voided: what was paid on it is the customer's credit again, and
    settles their other open invoices. Call inside the voiding transaction."""
    invoice = Invoice.objects.get(pk=invoice_id)
    _lock_customer(invoice.customer_id)
    Allocation.objects.filter(invoice_id=invoice_id).delete()
    settled = _allocate(invoice.customer_id, invoice.currency, paid_at=now or timezone.now())
    _reactivate(invoice.customer_id, settled, now)
    return settled


def apply_credit(*, customer_ids: Iterable[int], now: datetime | None = None) -> list[int]:
    """Settle newly issued invoices from the credit of those customers who have any.
    Returns the invoices made paid."""
    now = now or timezone.now()
    with_credit = customers_with_credit(customer_ids)
    settled: list[int] = []
    for customer_id, currency in with_credit:
        with transaction.atomic():
            _lock_customer(customer_id)
            paid = _allocate(customer_id, currency, paid_at=now)
            _reactivate(customer_id, paid, now)
        settled += paid
    return settled


def apply_open_credit(*, now: datetime | None = None) -> list[int]:
    """The beat's safety net: put credit on the open invoices of every customer who holds
    both (a crash between issuing and `apply_credit` would otherwise leave them owing while
    in credit). Idempotent: credit used once is no longer credit. Returns invoices paid."""
    open_customers = (
        Invoice.objects.filter(status=InvoiceStatus.ISSUED, total__gt=0)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    return apply_credit(customer_ids=open_customers, now=now)


# Reads --------------------------------------------------------------------------------


def invoice_balance(invoice: Invoice) -> Decimal:
    """What is still owed: the total less what payments put on it (0 once void)."""
    if invoice.status == InvoiceStatus.VOID:
        return ZERO
    paid = Allocation.objects.filter(invoice=invoice).aggregate(s=Sum("amount"))["s"] or ZERO
    return invoice.total - paid


def credit(customer_id: int, currency: str) -> Decimal:
    """Money received and not put on any invoice (less refunds paid out)."""
    received = (
        Payment.objects.filter(customer_id=customer_id, currency=currency).aggregate(
            s=Sum("amount")
        )["s"]
        or ZERO
    )
    allocated = (
        Allocation.objects.filter(
            payment__customer_id=customer_id, payment__currency=currency
        ).aggregate(s=Sum("amount"))["s"]
        or ZERO
    )
    return received - allocated


def customers_with_credit(customer_ids: Iterable[int]) -> list[tuple[int, str]]:
    """(customer, currency) pairs among `customer_ids` with credit left. Two grouped
    queries whatever the number of customers: issuing 20,000 invoices asks this once."""
    ids = list(customer_ids)
    received: dict[tuple[int, str], Decimal] = {}
    for row in (
        Payment.objects.filter(customer_id__in=ids)
        .values("customer_id", "currency")
        .annotate(s=Sum("amount"))
    ):
        received[(row["customer_id"], row["currency"])] = row["s"]
    if not received:
        return []
    for customer_id, currency, used in (
        Allocation.objects.filter(payment__customer_id__in=[c for c, _ in received])
        .values("payment__customer_id", "payment__currency")
        .annotate(s=Sum("amount"))
        .values_list("payment__customer_id", "payment__currency", "s")
    ):
        key = (customer_id, currency)
        received[key] = received.get(key, ZERO) - used
    return sorted(key for key, left in received.items() if left > 0)


# Internals ----------------------------------------------------------------------------


def _allocate(
    customer_id: int, currency: str, *, paid_at: datetime, first: int | None = None
) -> list[int]:
    """Put the customer's credit on their open invoices (`first`, then oldest issued
    first), funding each from the oldest payments with money left. Marks the invoices it
    settles paid and returns them. The caller holds the customer's row lock."""
    left = credit(customer_id, currency)
    if left <= 0:
        return []
    # [payment id, money it has left], oldest first.
    payments: list[tuple[int, list[Decimal]]] = [
        (payment_id, [amount - (used or ZERO)])
        for payment_id, amount, used in Payment.objects.filter(
            customer_id=customer_id, currency=currency, amount__gt=0
        )
        .annotate(used=Sum("allocations__amount"))
        .order_by("received_at", "id")
        .values_list("id", "amount", "used")
        if amount - (used or ZERO) > 0
    ]
    open_invoices = list(
        Invoice.objects.select_for_update()
        .filter(customer_id=customer_id, currency=currency, status=InvoiceStatus.ISSUED)
        .order_by("issued_at", "number")
    )
    if first is not None:
        open_invoices.sort(key=lambda invoice: invoice.pk != first)  # stable: rest stay in order
    paid_so_far = dict(
        Allocation.objects.filter(invoice__in=open_invoices)
        .values("invoice_id")
        .annotate(s=Sum("amount"))
        .values_list("invoice_id", "s")
    )
    settled: list[int] = []
    for invoice in open_invoices:
        if left <= 0:
            break
        due = invoice.total - paid_so_far.get(invoice.pk, ZERO)
        if due <= 0:
            continue
        # Refunds only lower the credit, so the payments' remainders always cover `take`.
        take = min(due, left)
        left -= take
        rest = take
        for funding in payments:
            payment_id, remaining = funding
            part = min(rest, remaining[0])
            if part > 0:
                remaining[0] -= part
                rest -= part
                _add_allocation(payment_id, invoice.pk, part, paid_at)
        if take == due:
            invoice.status = InvoiceStatus.PAID
            invoice.paid_at = paid_at
            invoice.save(update_fields=["status", "paid_at"])
            settled.append(invoice.pk)
    return settled


def _add_allocation(payment_id: int, invoice_id: int, amount: Decimal, at: datetime) -> None:
    row, created = Allocation.objects.get_or_create(
        payment_id=payment_id,
        invoice_id=invoice_id,
        defaults={"amount": amount, "allocated_at": at},
    )
    if not created:
        row.amount += amount
        row.save(update_fields=["amount"])


def _create(**fields: object) -> Payment:
    try:
        with transaction.atomic():
            return Payment.objects.create(**fields)
    except IntegrityError as exc:
        # Only another customer's payment can hold this reference: ours are serialised
        # by the row lock and were looked up first.
        raise PaymentConflict(
            f"{fields['method']} reference {fields['reference']!r} is already recorded "
            "for another customer"
        ) from exc


def _same(existing: Payment, customer_id: int, amount: Decimal, currency: str) -> Payment:
    if (existing.customer_id, existing.amount, existing.currency) != (
        customer_id,
        amount,
        currency,
    ):
        raise PaymentConflict(
            f"{existing.method} reference {existing.reference!r} is already recorded as "
            f"{existing.amount} {existing.currency} for customer {existing.customer_id}"
        )
    return existing


def _lock_customer(customer_id: int) -> None:
    if not Customer.objects.select_for_update().filter(pk=customer_id).exists():
        raise PaymentError(f"no customer {customer_id}")


def _check_invoice(invoice_id: int, customer_id: int, currency: str) -> None:
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None or invoice.customer_id != customer_id:
        raise PaymentError(f"invoice {invoice_id} is not customer {customer_id}'s")
    if invoice.currency != currency:
        raise PaymentError(
            f"{invoice.display_number} is in {invoice.currency}, the payment in {currency}"
        )


def _positive(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise PaymentError("the amount must be a positive decimal")
    if amount != amount.quantize(Decimal("0.0001")):
        raise PaymentError("the amount has more than 4 decimal places")
    return amount


def _currency(code: str) -> str:
    code = (code or "").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise PaymentError(f"{code!r} is not an ISO 4217 currency code")
    return code


def _reactivate(customer_id: int, settled: list[int], now: datetime | None) -> None:
    """Settling may lift a dunning suspension: in the payment's transaction, so the two
    commit together (the status change reaches SolusIO through the sync outbox)."""
    if settled:
        from usage import dunning  # dunning needs users.services; keep the import local

        dunning.reactivate_if_settled(customer_id=customer_id, now=now)


__all__ = [
    "PaymentConflict",
    "PaymentError",
    "Recorded",
    "apply_credit",
    "apply_open_credit",
    "credit",
    "customers_with_credit",
    "invoice_balance",
    "pay_balance_by_hand",
    "record_payment",
    "refund",
    "release_allocations",
]
