"""CSV export of invoices, one row per line (staff spreadsheets, accounting imports)."""

import csv
import io
from collections.abc import Iterable

from usage.models import Invoice

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


def invoices_csv(invoices: Iterable[Invoice]) -> str:
    """`invoices` with customer selected and lines prefetched."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
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
            writer.writerow(
                [
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
            )
    return out.getvalue()
