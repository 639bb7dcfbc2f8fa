"""Recording payments and refunds, and settling invoices with them.

Every change to a customer's money runs under that customer's row lock, so allocations
never exceed a payment or an invoice's balance however many webhooks, statement imports
and clerks act at once. Payments are unique on (method, reference): recording the same
one twice returns the first. No amount is rounded here: payments, allocations and invoice
totals are already exact in the currency's minor unit, and only subtracted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from payments.models import Allocation, Payment, PaymentMethod
from usage import db
from usage.models import CreditNote, Invoice, InvoiceStatus
from users.models import Customer, CustomerStatus

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
    return _apply(customers_with_credit(customer_ids), now or timezone.now())


def _apply(with_credit: list[tuple[int, str]], now: datetime) -> list[int]:
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
    # From the (few) customers holding credit, not the (many) with open invoices: two
    # grouped queries over the payments, and no list of every open customer's id.
    open_ones = Invoice.objects.filter(
        customer_id=OuterRef("customer_id"),
        currency=OuterRef("currency"),
        status=InvoiceStatus.ISSUED,
        total__gt=0,
    )
    payers = Payment.objects.filter(Exists(open_ones)).values_list("customer_id", flat=True)
    return _apply(customers_with_credit(payers), now or timezone.now())


@dataclass(frozen=True)
class PaymentIn:
    """One payment for record_payments: record_payment's arguments."""

    customer_id: int
    amount: Decimal
    currency: str
    method: str
    received_at: datetime
    reference: str = ""
    invoice_id: int | None = None
    note: str = ""


def record_payments(
    items: Sequence[PaymentIn],
    *,
    user: AbstractBaseUser | None = None,
    now: datetime | None = None,
) -> list[Recorded | PaymentError]:
    """record_payment for many payments in one transaction, with the same outcome as
    recording them one by one in order, in a handful of queries whatever their number
    (a bank statement's thousands of transfers): the customers are locked at once (in id
    order, so two batches never deadlock), their credit, payments and open invoices read
    once, allocated in memory by the same ledger, and written in bulk. Each item's
    result is its Recorded or the PaymentError it raised alone. An IntegrityError (a
    reference recorded concurrently for another customer) rolls the batch back: record
    those one by one."""
    created_by: Any = user if user is not None and user.is_authenticated else None
    results: list[Recorded | PaymentError | None] = [None] * len(items)
    valid: list[tuple[int, PaymentIn]] = []
    for index, item in enumerate(items):
        try:
            amount, currency = _positive(item.amount), _currency(item.currency)
            if item.method not in PaymentMethod.values:
                raise PaymentError(f"unknown payment method {item.method!r}")
        except PaymentError as exc:
            results[index] = exc
            continue
        valid.append(
            (
                index,
                replace(item, amount=amount, currency=currency, reference=item.reference.strip()),
            )
        )
    with transaction.atomic():
        customer_ids = sorted({item.customer_id for _i, item in valid})
        statuses = dict(
            Customer.objects.select_for_update()
            .filter(pk__in=customer_ids)
            .order_by("pk")
            .values_list("pk", "status")
        )
        references = {(item.method, item.reference) for _i, item in valid if item.reference}
        known: dict[tuple[str, str], Payment] = {}
        if references:
            for payment in Payment.objects.filter(
                method__in={m for m, _r in references}, reference__in={r for _m, r in references}
            ):
                known[(payment.method, payment.reference)] = payment
        invoices = {
            pk: (customer_id, currency, number)
            for pk, customer_id, currency, number in Invoice.objects.filter(
                pk__in={item.invoice_id for _i, item in valid if item.invoice_id is not None}
            ).values_list("pk", "customer_id", "currency", "number")
        }
        new: list[tuple[int, PaymentIn, Payment]] = []
        for index, item in valid:
            try:
                if item.customer_id not in statuses:
                    raise PaymentError(f"no customer {item.customer_id}")
                existing = known.get((item.method, item.reference)) if item.reference else None
                if existing is not None:
                    same = _same(existing, item.customer_id, item.amount, item.currency)
                    results[index] = Recorded(same, created=False)
                    continue
                if item.invoice_id is not None:
                    _check_known_invoice(invoices.get(item.invoice_id), item)
            except PaymentError as exc:
                results[index] = exc
                continue
            payment = Payment(
                customer_id=item.customer_id,
                amount=item.amount.quantize(Decimal("0.0001")),  # as the column returns it
                currency=item.currency,
                method=item.method,
                reference=item.reference,
                received_at=item.received_at,
                note=item.note[:500],
                created_by=created_by,
            )
            if item.reference:
                known[(item.method, item.reference)] = payment  # twice in one batch: once
            new.append((index, item, payment))
        # Read before the new payments exist: the ledger receives them one by one.
        ledgers, paid_so_far = _ledgers({(item.customer_id, item.currency) for _i, item, _p in new})
        Payment.objects.bulk_create([payment for _i, _item, payment in new])
        added: dict[tuple[int, int], tuple[Decimal, datetime]] = {}
        paid: dict[int, datetime] = {}
        settled_by: dict[int, list[int]] = {}
        for index, item, payment in new:
            ledger = ledgers[(item.customer_id, item.currency)]
            ledger.receive(payment.pk, item.received_at, item.amount)
            allocations, settled = ledger.settle(item.invoice_id)
            for payment_id, invoice_id, amount in allocations:
                before, at = added.get((payment_id, invoice_id), (ZERO, item.received_at))
                added[(payment_id, invoice_id)] = (before + amount, at)
            for invoice_id in settled:
                paid[invoice_id] = item.received_at
            settled_by.setdefault(item.customer_id, []).extend(settled)
            results[index] = Recorded(payment, created=True, settled=settled)
        _write_allocations(added, paid_so_far)
        db.update_each(
            Invoice, list(paid), {"paid_at": list(paid.values())}, status=InvoiceStatus.PAID
        )
        for customer_id, settled in settled_by.items():
            # Only a suspended customer can be reactivated: skip the others' queries.
            if statuses[customer_id] == CustomerStatus.SUSPENDED:
                _reactivate(customer_id, settled, now)
    return [result for result in results if result is not None]


def _check_known_invoice(found: tuple[int, str, int | None] | None, item: PaymentIn) -> None:
    """_check_invoice on a row already read."""
    if found is None or found[0] != item.customer_id:
        raise PaymentError(f"invoice {item.invoice_id} is not customer {item.customer_id}'s")
    if found[1] != item.currency:
        number = f"INV-{found[2]:06d}" if found[2] else f"draft #{item.invoice_id}"
        raise PaymentError(f"{number} is in {found[1]}, the payment in {item.currency}")


def _ledgers(
    keys: set[tuple[int, str]],
) -> tuple[dict[tuple[int, str], _Ledger], dict[tuple[int, int], tuple[int, Decimal]]]:
    """The ledgers of (customer, currency) pairs, read in four queries (the caller holds
    the customers' locks), and the existing allocations on their open invoices:
    (payment, invoice) → (row id, amount)."""
    customer_ids = {customer_id for customer_id, _c in keys}
    ledgers = {key: _Ledger(credit=ZERO, fundings=[], dues=[]) for key in keys}
    for payment_id, customer_id, currency, received_at, amount, used in (
        Payment.objects.filter(customer_id__in=customer_ids)
        .annotate(used=Sum("allocations__amount"))
        .order_by("received_at", "id")
        .values_list("id", "customer_id", "currency", "received_at", "amount", "used")
    ):
        ledger = ledgers.get((customer_id, currency))
        if ledger is None:
            continue
        # Credit is money received less money allocated; refunds (negative) lower it.
        ledger.credit += amount - (used or ZERO)
        if amount > 0 and amount - (used or ZERO) > 0:
            ledger.fundings.append(
                _Funding((received_at, payment_id), payment_id, amount - (used or ZERO))
            )
    open_invoices = list(
        Invoice.objects.select_for_update()
        .filter(customer_id__in=customer_ids, status=InvoiceStatus.ISSUED)
        .order_by("issued_at", "number")
        .values_list("id", "customer_id", "currency", "total")
    )
    existing: dict[tuple[int, int], tuple[int, Decimal]] = {}
    paid: dict[int, Decimal] = {}
    for row_id, payment_id, invoice_id, amount in Allocation.objects.filter(
        invoice_id__in=[row[0] for row in open_invoices]
    ).values_list("id", "payment_id", "invoice_id", "amount"):
        existing[(payment_id, invoice_id)] = (row_id, amount)
        paid[invoice_id] = paid.get(invoice_id, ZERO) + amount
    for invoice_id, customer_id, currency, total in open_invoices:
        ledger = ledgers.get((customer_id, currency))
        if ledger is not None:
            ledger.dues.append([invoice_id, total - paid.get(invoice_id, ZERO)])
    return ledgers, existing


def _write_allocations(
    added: dict[tuple[int, int], tuple[Decimal, datetime]],
    existing: dict[tuple[int, int], tuple[int, Decimal]],
) -> None:
    """New (payment, invoice) pairs inserted (dated when the money was received, as
    _allocate dates them), a pair that already had a row grown."""
    grown = []
    fresh = []
    for (payment_id, invoice_id), (amount, at) in added.items():
        if (payment_id, invoice_id) in existing:
            row_id, before = existing[(payment_id, invoice_id)]
            grown.append((row_id, before + amount))
        else:
            fresh.append(
                Allocation(
                    payment_id=payment_id, invoice_id=invoice_id, amount=amount, allocated_at=at
                )
            )
    Allocation.objects.bulk_create(fresh, batch_size=2000)
    db.update_each(Allocation, [pk for pk, _a in grown], {"amount": [a for _p, a in grown]})


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
    """(customer, currency) pairs among `customer_ids` (ids, or a subquery of them) with
    credit left. Two grouped queries whatever the number of customers: issuing 20,000
    invoices asks this once."""
    # A queryset stays a subquery (no list of every id in the statement); a list travels
    # as one array parameter (`__any`): issuing asks this per batch of a thousand ids.
    if isinstance(customer_ids, QuerySet):
        among = Q(customer_id__in=customer_ids)
    else:
        among = Q(customer_id__any=list(customer_ids))
    received: dict[tuple[int, str], Decimal] = {}
    for row in (
        Payment.objects.filter(among).values("customer_id", "currency").annotate(s=Sum("amount"))
    ):
        received[(row["customer_id"], row["currency"])] = row["s"]
    if not received:
        return []
    for customer_id, currency, used in (
        Allocation.objects.filter(payment__customer_id__any=[c for c, _ in received])
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
    open_invoices = list(
        Invoice.objects.select_for_update()
        .filter(customer_id=customer_id, currency=currency, status=InvoiceStatus.ISSUED)
        .order_by("issued_at", "number")
    )
    paid_so_far = dict(
        Allocation.objects.filter(invoice__in=open_invoices)
        .values("invoice_id")
        .annotate(s=Sum("amount"))
        .values_list("invoice_id", "s")
    )
    ledger = _Ledger(
        credit=left,
        fundings=[
            _Funding((received_at, payment_id), payment_id, amount - (used or ZERO))
            for payment_id, received_at, amount, used in Payment.objects.filter(
                customer_id=customer_id, currency=currency, amount__gt=0
            )
            .annotate(used=Sum("allocations__amount"))
            .order_by("received_at", "id")
            .values_list("id", "received_at", "amount", "used")
            if amount - (used or ZERO) > 0
        ],
        dues=[[i.pk, i.total - paid_so_far.get(i.pk, ZERO)] for i in open_invoices],
    )
    allocations, settled = ledger.settle(first)
    for payment_id, invoice_id, amount in allocations:
        _add_allocation(payment_id, invoice_id, amount, paid_at)
    by_id = {invoice.pk: invoice for invoice in open_invoices}
    for invoice_id in settled:
        invoice = by_id[invoice_id]
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = paid_at
        invoice.save(update_fields=["status", "paid_at"])
    return settled


@dataclass
class _Funding:
    order: tuple[datetime, int]  # (received_at, id): the oldest money is used first
    payment_id: int
    left: Decimal


@dataclass
class _Ledger:
    """One customer's money in one currency while it is allocated: the credit, the
    payments with money left (oldest first) and the open invoices' dues (oldest issued
    first). record_payment and record_payments both settle through it."""

    credit: Decimal
    fundings: list[_Funding]
    dues: list[list]  # [invoice id, due]

    def receive(self, payment_id: int, received_at: datetime, amount: Decimal) -> None:
        self.credit += amount
        bisect.insort(
            self.fundings, _Funding((received_at, payment_id), payment_id, amount), key=_order
        )

    def settle(self, first: int | None) -> tuple[list[tuple[int, int, Decimal]], list[int]]:
        """Allocations (payment, invoice, amount) putting the credit on the dues, `first`
        first, and the invoices that leaves with nothing due."""
        allocations: list[tuple[int, int, Decimal]] = []
        settled: list[int] = []
        if self.credit <= 0:
            return allocations, settled
        order = self.dues
        if first is not None:
            order = sorted(order, key=lambda due: due[0] != first)  # stable: rest in order
        for entry in order:
            if self.credit <= 0:
                break
            invoice_id, due = entry
            if due <= 0:
                continue
            # Refunds only lower the credit, so the payments' remainders always cover `take`.
            take = min(due, self.credit)
            self.credit -= take
            rest = take
            for funding in self.fundings:
                part = min(rest, funding.left)
                if part > 0:
                    funding.left -= part
                    rest -= part
                    allocations.append((funding.payment_id, invoice_id, part))
            entry[1] = due - take
            if take == due:
                settled.append(invoice_id)
        self.dues = [entry for entry in self.dues if entry[1] > 0]
        self.fundings = [funding for funding in self.fundings if funding.left > 0]
        return allocations, settled


def _order(funding: _Funding) -> tuple[datetime, int]:
    return funding.order


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
    "PaymentIn",
    "Recorded",
    "apply_credit",
    "apply_open_credit",
    "credit",
    "customers_with_credit",
    "invoice_balance",
    "pay_balance_by_hand",
    "record_payment",
    "record_payments",
    "refund",
    "release_allocations",
]
