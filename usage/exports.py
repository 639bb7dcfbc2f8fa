"""CSV export of invoices and credit notes, one row per line (staff spreadsheets, accounting
imports)."""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from usage.models import CreditNote, Invoice

HEADER = [
    "invoice",
    "status",
    "customer_id",
    "customer_email",
    "period",
    "currency",
    "issued_at",
    "paid_at",
    "line",
    "server_id",
    "server_name",
    "item",
    "plan",
    "hours",
    "tokens_per_hour",
    "tokens_per_month",
    "rule",
    "tokens",
    "amount",
    "discrepancy",
    "invoice_subtotal",
    "invoice_taxes",
    "invoice_total",
]


def _to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def invoices_csv(invoices: Iterable[Invoice]) -> str:
    """`invoices` with customer selected and lines prefetched."""
    return _to_csv(HEADER, _invoice_rows(invoices))


def _invoice_rows(invoices: Iterable[Invoice]) -> Iterator[list[object]]:
    for inv in invoices:
        head = [
            inv.display_number,
            inv.status,
            inv.customer_id,
            inv.customer.email,
            f"{inv.period:%Y-%m}",
            inv.currency,
            inv.issued_at.isoformat() if inv.issued_at else "",
            inv.paid_at.isoformat() if inv.paid_at else "",
        ]
        tail = [inv.subtotal, inv.tax_total, inv.total]
        for line in inv.lines.all():
            yield [
                *head,
                line.position,
                line.server_id,
                line.server_name,
                line.item,
                line.plan_name,
                line.hours,
                line.tokens_per_hour,
                line.tokens_per_month,
                line.rule,
                line.tokens,
                line.amount,
                int(line.discrepancy),
                *tail,
            ]


# The invoice export's columns, renamed where they describe the credit note, without those
# a credit note does not carry (paid, unit tokens, discrepancy).
CREDIT_NOTE_HEADER = [
    "credit_note",
    "kind",
    "reason",
    *(c for c in HEADER if c not in ("status", "paid_at", "discrepancy") and "per_" not in c),
]
CREDIT_NOTE_HEADER[-3:] = ["credit_subtotal", "credit_taxes", "credit_total"]


def credit_notes_csv(notes: Iterable[CreditNote]) -> str:
    """`notes` with invoice and customer selected; amounts negative, as on the notes."""
    return _to_csv(CREDIT_NOTE_HEADER, _credit_note_rows(notes))


def _credit_note_rows(notes: Iterable[CreditNote]) -> Iterator[list[object]]:
    for note in notes:
        invoice = note.invoice
        head = [
            note.display_number,
            note.kind,
            note.reason,
            invoice.display_number,
            invoice.customer_id,
            invoice.customer.email,
            f"{invoice.period:%Y-%m}",
            note.currency,
            note.issued_at.isoformat(),
        ]
        tail = [note.subtotal, note.tax_total, note.total]
        for line in note.lines:
            yield [
                *head,
                *(line[key] for key in ("position", "server_id", "server_name", "item")),
                *(line[key] for key in ("plan_name", "hours", "rule", "tokens", "amount")),
                *tail,
            ]
