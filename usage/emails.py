"""Invoice e-mails: each issued invoice reaches its customer once, with its PDF, through an
outbox written in the issuing transaction (docs/architecture.md, Outboxes)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable, Sequence
from datetime import datetime

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from bridge.models import DeliveryState
from bridge.money import format_money
from bridge.outbox import Outbox, Outcome, Step
from bridge.sql import render
from usage import legal
from usage.models import (
    BillingSettings,
    Invoice,
    InvoiceEmail,
    InvoiceStatus,
)
from usage.rules import PricingSnapshot

log = logging.getLogger(__name__)

# What a delivery attempt may raise that is worth trying again: the server refused or
# dropped us, timed out, or answered with an SMTP error.
TRANSIENT = (smtplib.SMTPException, OSError)


outbox: Outbox[InvoiceEmail] = Outbox(
    label="invoice e-mails",
    model=InvoiceEmail,
    key="invoice_id",
    task="usage.tasks.send_invoice_emails",
    settings_prefix="INVOICE_EMAIL",
    pending=DeliveryState.PENDING,
    parked=DeliveryState.FAILED,
    jitter=0.2,  # the next attempt 0.8 to 1 times the doubled wait
)
sweep = outbox.sweep


# --- Recording (inside the issuing transaction) ------------------------------------------

_RECORD_ISSUED = """
INSERT INTO {e} ({e.invoice}, {e.state}, {e.attempts}, {e.last_error}, {e.recipient},
                 {e.created_at})
SELECT i, %s, 0, '', '', %s FROM unnest(%s::bigint[]) AS i
ON CONFLICT ({e.invoice}) DO NOTHING
"""


def record_issued(*, invoice_ids: Sequence[int], now: datetime) -> int:
    """One pending e-mail per newly issued invoice, unless staff turned e-mails off.
    Delivery is requested when the caller's transaction commits. Returns how many."""
    if not invoice_ids or not BillingSettings.load().email_invoices:
        return 0
    if connection.vendor == "postgresql":
        # One statement, however many (a close issues all): 10,000 records took 0.13 s
        # this way and 1.1 s with bulk_create (batches of 1,000) on the 2-core machine.
        with connection.cursor() as cursor:
            cursor.execute(
                render(_RECORD_ISSUED, e=InvoiceEmail),
                [DeliveryState.PENDING.value, now, list(invoice_ids)],
            )
    else:
        InvoiceEmail.objects.bulk_create(
            [InvoiceEmail(invoice_id=i, created_at=now) for i in invoice_ids],
            ignore_conflicts=True,  # the one-to-one already holds one: keep it
            batch_size=1000,
        )
    ids = list(invoice_ids)
    outbox.request_delivery(ids)
    return len(ids)


def resend(*, invoice_ids: Iterable[int], now: datetime | None = None) -> int:
    """Staff: send these invoices' e-mails (again), whatever happened before. Drafts and
    void invoices are left out. Returns how many were queued."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Invoice.objects.filter(
                pk__in=list(invoice_ids), status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PAID]
            )
            .select_for_update()
            .values_list("id", flat=True)
        )
        for invoice_id in ids:
            InvoiceEmail.objects.update_or_create(
                invoice_id=invoice_id,
                defaults={
                    "state": DeliveryState.PENDING,
                    "attempts": 0,
                    "last_error": "",
                    "next_attempt_at": None,
                },
                create_defaults={"created_at": now},
            )
        outbox.request_delivery(ids)
    return len(ids)


# --- Delivery ------------------------------------------------------------------------------


def deliver(*, invoice_id: int, now: datetime | None = None) -> Outcome:
    """Send one invoice's pending e-mail if it is due; record what happened."""
    now = now or timezone.now()
    with transaction.atomic():
        records = InvoiceEmail.objects.select_related("invoice__customer")
        record = outbox.claim(records.filter(invoice_id=invoice_id), now).first()
        if record is None:
            return Outcome(Step.IDLE)  # not pending, not due, or another worker has it
        invoice = record.invoice
        if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            record.state = DeliveryState.SKIPPED
            record.last_error = f"not sent: the invoice is {invoice.status}"
            record.save(update_fields=["state", "last_error"])
            return Outcome(Step.SKIPPED)
        record.attempts += 1
        record.recipient = invoice.customer.email
        try:
            invoice_message(invoice).send()
        except SoftTimeLimitExceeded:
            # The task ran out of time (a slow server, a long batch): not this e-mail's
            # fault. Rolled back, it stays pending and the sweep sends it; the task stops.
            raise
        except TRANSIENT as exc:
            return _failed(record, exc, now)
        except Exception as exc:  # not the server's fault: a retry cannot help
            # A message that cannot even be built or handed over (a rendering bug, a bad
            # header) is parked for staff at once rather than retried for ever.
            log.exception("invoice %s: the e-mail could not be built or sent", invoice_id)
            record.attempts = max(record.attempts, settings.INVOICE_EMAIL_MAX_ATTEMPTS)
            return _failed(record, exc, now)
        record.state = DeliveryState.SENT
        record.sent_at = now
        record.last_error = ""
        record.next_attempt_at = None
        record.save()
    log.info("invoice %s e-mailed (attempt %d)", invoice.display_number, record.attempts)
    return Outcome(Step.DELIVERED)


def _failed(record: InvoiceEmail, exc: BaseException, now: datetime) -> Outcome:
    # The server's words, never the URL (EMAIL_URL may carry the password).
    error = f"{type(exc).__name__}: {exc}"
    if record.attempts >= settings.INVOICE_EMAIL_MAX_ATTEMPTS:
        outbox.park(record, error, fields=["recipient"])
        return Outcome(Step.PARKED)
    delay = outbox.retry_later(record, error, now=now, fields=["recipient"])
    return Outcome(Step.WAIT, retry_in=delay)


def _paid_so_far(invoice: Invoice, pricing: PricingSnapshot) -> list[str]:
    """Each payment or credit put on the invoice, and the amount still due (none: the
    total is due)."""
    from payments import selectors as payment_selectors  # payments builds on usage

    paid = payment_selectors.paid_lines(invoice) if invoice.number else []
    if not paid:
        return []
    due = format_money(payment_selectors.balance_of(invoice), pricing)
    return [
        *(f"{line.label}: {format_money(-line.amount, pricing)}" for line in paid),
        _("Amount due: %(amount)s") % {"amount": due},
    ]


def invoice_message(invoice: Invoice) -> EmailMessage:
    """The customer's e-mail, in their language: a short note with the total and the PDF
    attached."""
    with translation.override(invoice.customer.language):
        return _invoice_message(invoice)


def _invoice_message(invoice: Invoice) -> EmailMessage:
    # Imported here: fpdf2 takes a fifth of a second to import, and the close (which
    # records e-mails) never renders one.
    from usage.einvoice.documents import invoice_pdf
    from usage.pdf import invoice_filename

    pricing = PricingSnapshot.from_json(invoice.snapshot)
    customer = invoice.customer
    details = legal.details_of(invoice)
    link = legal.payment_link(details, invoice)
    names = {"number": invoice.display_number, "month": legal.month_and_year(invoice.period)}
    lines = [
        _("Hello %(name)s,") % {"name": customer.name or customer.email},
        "",
        _("your invoice %(number)s for %(month)s is attached.") % names,
        _("Total: %(amount)s") % {"amount": format_money(invoice.total, pricing)},
    ]
    lines += _paid_so_far(invoice, pricing)
    if details.due_date and invoice.total > 0:
        lines.append(_("Due date: %(date)s") % {"date": legal.long_date(details.due_date)})
    if invoice.total > 0 and invoice.number:
        lines.append(
            _("Bank transfer reference: %(reference)s")
            % {"reference": invoice.printed_payment_reference}
        )
    if link and invoice.total > 0:
        lines.append(_("Pay online: %(link)s") % {"link": link})
    lines += ["", _("Thank you.")]
    support = details.seller.support_email
    message = EmailMessage(
        subject=_("Invoice %(number)s for %(month)s") % names,
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        reply_to=[support] if support else None,
    )
    message.attach(f"{invoice_filename(invoice)}.pdf", invoice_pdf(invoice), "application/pdf")
    return message
