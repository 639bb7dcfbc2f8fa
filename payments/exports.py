"""CSV export of payments, one row per payment (staff spreadsheets, accounting imports)."""

from collections.abc import Iterable, Iterator
from decimal import Decimal

from payments.models import Payment
from usage.exports import _to_csv

HEADER = [
    "payment",
    "received_at",
    "customer_id",
    "customer_email",
    "method",
    "reference",
    "currency",
    "amount",
    "allocated",
    "unallocated",
    "invoices",
    "credit_note",
    "note",
]


def payments_csv(payments: Iterable[Payment]) -> str:
    """`payments` with customer and credit note selected, allocations (with their invoice)
    prefetched. Amounts exact, as stored; refunds negative."""
    return _to_csv(HEADER, _rows(payments))


def _rows(payments: Iterable[Payment]) -> Iterator[list[object]]:
    for payment in payments:
        allocations = list(payment.allocations.all())
        allocated = sum((a.amount for a in allocations), Decimal(0))
        yield [
            payment.pk,
            payment.received_at.isoformat(),
            payment.customer_id,
            payment.customer.email,
            payment.method,
            payment.reference,
            payment.currency,
            payment.amount,
            allocated,
            payment.amount - allocated if payment.amount > 0 else Decimal(0),
            " ".join(a.invoice.display_number for a in allocations),
            payment.credit_note.display_number if payment.credit_note else "",
            payment.note,
        ]
