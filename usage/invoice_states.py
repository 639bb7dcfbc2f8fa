"""Invoice state changes: issue (number and freeze), mark paid, void, regenerate a draft."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from bridge.sql import render
from usage import db, emails, legal
from usage.build import build_invoices
from usage.cycle import CloseSummary
from usage.models import (
    CreditNote,
    CreditNoteKind,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
)
from usage.rules import Period
from users.models import Customer

ISSUE_BATCH = 1000  # invoices per numbering transaction
COUNTER = "invoice"
CREDIT_NOTE_COUNTER = "credit_note"


class InvoiceStateError(Exception):
    """An action that the invoice's state does not allow (e.g. regenerating an issued one)."""


def issue_invoices(*, invoice_ids: Iterable[int], now: datetime | None = None) -> int:
    """Number and freeze the given drafts; others are left alone. Returns how many.

    Gap-free under concurrency: the counter row is locked first (so concurrent issuers
    queue up), numbers are taken in (period, customer) order, and the counter and the
    invoices commit together — a rolled-back issue leaves no hole.
    """
    now = now or timezone.now()
    # The order numbers are taken in, across batches too: drafts built by shards in
    # parallel have ids interleaved across customers.
    ids = list(
        Invoice.objects.filter(pk__any=sorted(set(invoice_ids)))
        .order_by("period", "customer_id", "id")
        .values_list("id", flat=True)
    )
    issued = 0
    for start in range(0, len(ids), ISSUE_BATCH):
        with transaction.atomic():
            counter = InvoiceCounter.objects.select_for_update().get_or_create(name=COUNTER)[0]
            rows = list(
                Invoice.objects.select_for_update()
                .filter(pk__any=ids[start : start + ISSUE_BATCH], status=InvoiceStatus.DRAFT)
                .order_by("period", "customer_id", "id")
                .values_list("id", "customer_id")
            )
            order = [invoice_id for invoice_id, _ in rows]
            # Number, status and the seller and customer as they are now (later edits never
            # change these invoices) in one statement: each invoice row is rewritten once.
            numbers = range(counter.last + 1, counter.last + 1 + len(order))
            if db.is_postgresql():
                _number_and_freeze(order, numbers, now)
            else:
                details = legal.details_on_issue(customer_ids=[c for _, c in rows], now=now)
                db.update_each(
                    Invoice,
                    order,
                    {"number": numbers, "legal": [details[c] for _, c in rows]},
                    status=InvoiceStatus.ISSUED,
                    issued_at=now,
                )
            # Nothing to pay is settled at issue (README, Dunning): paid, so the admin, the
            # API and the portal agree and no one is dunned over 0.00.
            Invoice.objects.filter(pk__any=order, total__lte=0).update(
                status=InvoiceStatus.PAID, paid_at=now
            )
            counter.last += len(order)
            counter.save(update_fields=["last"])
            # The customers' e-mails, recorded with the issue and sent once it commits.
            emails.record_issued(invoice_ids=order, now=now)
            issued += len(order)
        # Customers holding credit (an earlier overpayment) have it put on these invoices.
        from payments import services as payments  # payments builds on usage; import late

        payments.apply_credit(customer_ids=[c for _, c in rows], now=now)
        # Customers who saved a payment method are charged for what is left (if enabled).
        from payments import collect

        collect.after_issue(invoice_ids=order)
    return issued


_NUMBER_AND_FREEZE = """
UPDATE {i} AS t
SET {i.number} = n.number, {i.status} = %s, {i.issued_at} = %s, {i.legal} = {{legal}}
FROM unnest(%s::bigint[], %s::bigint[]) AS n(pk, number), {c} AS c
WHERE t.{i.id} = n.pk AND c.{c.id} = t.{i.customer}
"""


def _number_and_freeze(invoice_ids: list[int], numbers: Sequence[int], now: datetime) -> None:
    """`db.update_each` of the numbers, status, issue time and `legal.details_on_issue`,
    with the details made by PostgreSQL from the customers' rows (`details_on_issue_sql`)."""
    legal_sql, legal_params = legal.details_on_issue_sql(now=now, customer="c")
    template = render(_NUMBER_AND_FREEZE, i=Invoice, c=Customer)
    with connection.cursor() as cursor:
        cursor.execute(
            template.replace("{legal}", legal_sql),
            [InvoiceStatus.ISSUED.value, now, *legal_params, invoice_ids, list(numbers)],
        )


def issue_invoice(*, invoice_id: int) -> Invoice:
    if not issue_invoices(invoice_ids=[invoice_id]):
        invoice = Invoice.objects.get(pk=invoice_id)
        raise InvoiceStateError(f"{invoice.display_number} is {invoice.status}, not a draft")
    return Invoice.objects.get(pk=invoice_id)


def mark_paid(*, invoice_id: int, now: datetime | None = None, user: Any = None) -> Invoice:
    """Staff's word that the open balance was paid: recorded as a manual payment of it
    (payments.services), which settles the invoice and may lift a dunning suspension."""
    from payments import services as payments  # payments builds on usage; import late

    try:
        payments.pay_balance_by_hand(invoice_id=invoice_id, now=now, user=user)
    except payments.PaymentError as exc:
        raise InvoiceStateError(str(exc)) from exc
    return Invoice.objects.get(pk=invoice_id)


def void_invoice(
    *, invoice_id: int, reason: str = "Voided", now: datetime | None = None
) -> Invoice:
    """Void keeps the invoice's number (the sequence stays gap-free) and issues a credit
    note for all of it; a draft is deleted or regenerated instead, never voided."""
    invoice, _ = _credit(invoice_id, CreditNoteKind.VOID, reason, now or timezone.now())
    _after_settlement(invoice, now)
    return invoice


def correct_invoice(
    *, invoice_id: int, reason: str, now: datetime | None = None
) -> tuple[CreditNote, Invoice]:
    """Credit the whole issued invoice and open a new draft for its customer and period
    (rebuilt from the stored usage and today's prices) for staff to review and issue.
    All or nothing: with no usage left to bill, nothing changes (void it instead).
    Returns the credit note and the new draft."""
    now = now or timezone.now()
    found = Invoice.objects.get(pk=invoice_id)
    period = Period(found.period, found.period_start, found.period_end)
    # The period lock first, as a close takes it before it locks invoices.
    with db.period_lock(period), transaction.atomic():
        invoice, note = _credit(invoice_id, CreditNoteKind.CORRECTION, reason, now)
        _copy_as_draft(invoice, now)
        build_invoices(
            period=period,
            summary=CloseSummary(period=period.label, dry_run=False),
            customer_id=invoice.customer_id,
        )
        draft = live_invoice(invoice)
        if draft is None:
            raise InvoiceStateError(
                f"{invoice.display_number}: the customer has no usage left in the period, "
                "so there is nothing to correct it to; void it instead"
            )
    _after_settlement(invoice, now)
    return note, draft


def live_invoice(invoice: Invoice) -> Invoice | None:
    """The customer's invoice of the period that is not void (at most one: a constraint)."""
    return (
        Invoice.objects.filter(customer_id=invoice.customer_id, period=invoice.period)
        .exclude(status=InvoiceStatus.VOID)
        .first()
    )


def _copy_as_draft(invoice: Invoice, now: datetime) -> None:
    """A draft with the credited invoice's figures; its empty fingerprint makes the build
    that follows rewrite it and its lines from the usage."""
    Invoice.objects.create(
        customer_id=invoice.customer_id,
        period=invoice.period,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        tokens=invoice.tokens,
        subtotal=invoice.subtotal,
        tax_total=invoice.tax_total,
        total=invoice.total,
        snapshot=invoice.snapshot,
        taxes=invoice.taxes,
        discrepancies=invoice.discrepancies,
        fingerprint="",
        generated_at=now,
    )


def _credit(
    invoice_id: int, kind: CreditNoteKind, reason: str, now: datetime
) -> tuple[Invoice, CreditNote]:
    """Void the issued invoice and issue its credit note, in one transaction.

    The credit note counter is locked before the invoice (as issuing locks its counter
    first), so concurrent voids queue in one order and take numbers in commit order; a
    rolled-back void gives its number back."""
    reason = reason.strip()
    if not reason:
        raise InvoiceStateError("a credit note needs a reason")
    with transaction.atomic():
        counter = InvoiceCounter.objects.select_for_update().get_or_create(
            name=CREDIT_NOTE_COUNTER
        )[0]
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            raise InvoiceStateError(
                f"{invoice.display_number} is {invoice.status}; only an issued or paid "
                "invoice is voided or corrected"
            )
        counter.last += 1
        counter.save(update_fields=["last"])
        note = CreditNote.objects.create(
            invoice=invoice,
            number=counter.last,
            kind=kind,
            reason=reason[:500],
            issued_at=now,
            legal=_credit_legal(invoice, now),
            **credit_values(invoice),
        )
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = now
        invoice.save(update_fields=["status", "voided_at"])
        emails.record_credit_note(credit_note_id=note.pk, invoice_id=invoice.pk, now=now)
        # What was paid on it becomes the customer's credit (refundable against this
        # credit note, or used by their next invoice).
        from payments import services as payments  # payments builds on usage; import late

        payments.release_allocations(invoice_id=invoice.pk, now=now)
    return invoice, note


def _credit_legal(invoice: Invoice, now: datetime) -> dict[str, Any]:
    """The invoice's frozen seller and customer, with the credit note's own issue date (it
    has no due date: nothing is owed on it)."""
    issued, _ = legal.issue_and_due_date(now, 0)
    details = legal.details_of(invoice).as_json()
    return {**details, "issue_date": issued.isoformat(), "due_date": None}


def credit_values(invoice: Invoice) -> dict[str, Any]:
    """The invoice's amounts negated exactly (no rounding: each is already rounded)."""
    lines = [
        {
            "position": line.position,
            "server_id": line.server_id,
            "server_name": line.server_name,
            "plan_name": line.plan_name,
            "item": line.item,
            "started_at": line.started_at.isoformat(),
            "ended_at": line.ended_at.isoformat() if line.ended_at else None,
            "hours": line.hours,
            "tokens_per_hour": line.tokens_per_hour,
            "tokens_per_month": line.tokens_per_month,
            "rule": line.rule,
            "tokens": -line.tokens,
            "amount": str(-line.amount),
        }
        for line in InvoiceLine.objects.filter(invoice=invoice).order_by("position")
    ]
    taxes = [
        {**tax, "base": str(-Decimal(tax["base"])), "amount": str(-Decimal(tax["amount"]))}
        for tax in invoice.taxes
    ]
    return {
        "currency": invoice.currency,
        "tokens": -invoice.tokens,
        "subtotal": -invoice.subtotal,
        "tax_total": -invoice.tax_total,
        "total": -invoice.total,
        "taxes": taxes,
        "lines": lines,
    }


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
    return live_invoice(invoice)
