"""Invoice state changes: issue (number and freeze), mark paid, void, regenerate a draft."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from usage import db, emails, legal
from usage.build import build_invoices
from usage.cycle import CloseSummary
from usage.models import Invoice, InvoiceCounter, InvoiceStatus
from usage.rules import Period

ISSUE_BATCH = 1000  # invoices per numbering transaction
COUNTER = "invoice"


class InvoiceStateError(Exception):
    """An action that the invoice's state does not allow (e.g. regenerating an issued one)."""


def issue_invoices(*, invoice_ids: Iterable[int], now: datetime | None = None) -> int:
    """Number and freeze the given drafts; others are left alone. Returns how many.

    Gap-free under concurrency: the counter row is locked first (so concurrent issuers
    queue up), numbers are taken in (period, customer) order, and the counter and the
    invoices commit together — a rolled-back issue leaves no hole.
    """
    now = now or timezone.now()
    ids = sorted(set(invoice_ids))
    issued = 0
    for start in range(0, len(ids), ISSUE_BATCH):
        with transaction.atomic():
            counter = InvoiceCounter.objects.select_for_update().get_or_create(name=COUNTER)[0]
            rows = list(
                Invoice.objects.select_for_update()
                .filter(pk__in=ids[start : start + ISSUE_BATCH], status=InvoiceStatus.DRAFT)
                .order_by("period", "customer_id", "id")
                .values_list("id", "customer_id")
            )
            order = [invoice_id for invoice_id, _ in rows]
            # Number and status change together: only issued invoices have a number.
            db.update_each(
                Invoice,
                order,
                "number",
                range(counter.last + 1, counter.last + 1 + len(order)),
                status=InvoiceStatus.ISSUED,
                issued_at=now,
            )
            # Seller and customer as they are now: later edits never change these invoices.
            details = legal.details_on_issue(customer_ids=[c for _, c in rows], now=now)
            db.update_each(Invoice, order, "legal", [details[c] for _, c in rows])
            # Nothing to pay is settled at issue (README, Dunning): paid, so the admin, the
            # API and the portal agree and no one is dunned over 0.00.
            Invoice.objects.filter(pk__in=order, total__lte=0).update(
                status=InvoiceStatus.PAID, paid_at=now
            )
            counter.last += len(order)
            counter.save(update_fields=["last"])
            # The customers' e-mails, recorded with the issue and sent once it commits.
            emails.record_issued(invoice_ids=order, now=now)
            issued += len(order)
    return issued


def issue_invoice(*, invoice_id: int) -> Invoice:
    if not issue_invoices(invoice_ids=[invoice_id]):
        invoice = Invoice.objects.get(pk=invoice_id)
        raise InvoiceStateError(f"{invoice.display_number} is {invoice.status}, not a draft")
    return Invoice.objects.get(pk=invoice_id)


def _transition(invoice_id: int, allowed: set[str], **changes: Any) -> Invoice:
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status not in allowed:
            raise InvoiceStateError(
                f"{invoice.display_number} is {invoice.status}; allowed from: "
                + ", ".join(sorted(allowed))
            )
        for name, value in changes.items():
            setattr(invoice, name, value)
        invoice.save(update_fields=list(changes))
    return invoice


def mark_paid(*, invoice_id: int, now: datetime | None = None) -> Invoice:
    invoice = _transition(
        invoice_id, {InvoiceStatus.ISSUED}, status=InvoiceStatus.PAID, paid_at=now or timezone.now()
    )
    _after_settlement(invoice, now)
    return invoice


def void_invoice(*, invoice_id: int, now: datetime | None = None) -> Invoice:
    """Void keeps the number (the sequence stays gap-free); a draft cannot be voided."""
    invoice = _transition(
        invoice_id,
        {InvoiceStatus.ISSUED},
        status=InvoiceStatus.VOID,
        voided_at=now or timezone.now(),
    )
    _after_settlement(invoice, now)
    return invoice


def _after_settlement(invoice: Invoice, now: datetime | None) -> None:
    """A paid or voided invoice may lift a dunning suspension."""
    from usage import dunning  # dunning needs users.services; keep the import local

    dunning.reactivate_if_settled(customer_id=invoice.customer_id, now=now)


def regenerate_invoice(*, invoice_id: int) -> Invoice | None:
    """Rebuild one draft from the stored usage and today's prices."""
    invoice = Invoice.objects.get(pk=invoice_id)
    if invoice.is_frozen:
        raise InvoiceStateError(f"{invoice.display_number} is {invoice.status}: only drafts")
    period = Period(invoice.period, invoice.period_start, invoice.period_end)
    summary = CloseSummary(period=period.label, dry_run=False)
    with db.period_lock(period):
        build_invoices(period=period, summary=summary, customer_id=invoice.customer_id)
    # None when the customer has no usage left in the period (the draft was removed).
    return Invoice.objects.filter(customer_id=invoice.customer_id, period=invoice.period).first()
