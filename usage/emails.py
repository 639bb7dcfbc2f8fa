"""Invoice and credit note e-mails: each issued invoice and each credit note reaches its
customer once, with its PDF, through an outbox written in the issuing transaction
(docs/architecture.md, Outboxes). Credit note e-mails follow the INVOICE_EMAIL_* settings."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from bridge.models import DeliveryState
from bridge.money import format_money
from bridge.outbox import Outbox, Outcome, Step
from bridge.sql import render
from usage import legal
from usage.models import (
    BillingSettings,
    CreditNote,
    CreditNoteEmail,
    Invoice,
    InvoiceEmail,
    InvoiceStatus,
)
from usage.rules import PricingSnapshot
from users.models import Customer

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
credit_note_outbox: Outbox[CreditNoteEmail] = Outbox(
    label="credit note e-mails",
    model=CreditNoteEmail,
    key="credit_note_id",
    task="usage.tasks.send_credit_note_emails",
    settings_prefix="INVOICE_EMAIL",
    pending=DeliveryState.PENDING,
    parked=DeliveryState.FAILED,
    jitter=0.2,
)


def sweep(*, now: datetime | None = None, limit: int = 10_000) -> int:
    """Ask again for the invoice and credit note e-mails the broker lost or whose retry is
    due. Returns how many invoices and credit notes."""
    return outbox.sweep(now=now, limit=limit) + credit_note_outbox.sweep(now=now, limit=limit)


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


def record_credit_note(*, credit_note_id: int, invoice_id: int, now: datetime) -> bool:
    """A pending e-mail for a new credit note (inside the transaction that issues it) when
    its invoice was e-mailed: the customer who received the invoice receives its reversal.
    (One never sent, or voided before it went out, is not followed by a credit note out of
    the blue; staff can still send it.) Delivery is requested when the caller commits."""
    sent = InvoiceEmail.objects.filter(invoice_id=invoice_id, state=DeliveryState.SENT)
    if not BillingSettings.load().email_invoices or not sent.exists():
        return False
    CreditNoteEmail.objects.get_or_create(
        credit_note_id=credit_note_id, defaults={"created_at": now}
    )
    credit_note_outbox.request_delivery([credit_note_id])
    return True


def resend_credit_notes(*, credit_note_ids: Iterable[int], now: datetime | None = None) -> int:
    """Staff: send these credit notes' e-mails (again), whatever happened before. Returns
    how many were queued."""
    documents = CreditNote.objects.filter(pk__in=list(credit_note_ids))
    return _resend(credit_note_outbox, documents, now or timezone.now())


def resend(*, invoice_ids: Iterable[int], now: datetime | None = None) -> int:
    """Staff: send these invoices' e-mails (again), whatever happened before. Drafts and
    void invoices are left out. Returns how many were queued."""
    documents = Invoice.objects.filter(
        pk__in=list(invoice_ids), status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PAID]
    )
    return _resend(outbox, documents, now or timezone.now())


def _resend(box: Outbox[Any], documents: QuerySet[Any], now: datetime) -> int:
    """Each document's e-mail made pending afresh (made if it had none), and sent."""
    with transaction.atomic():
        ids = list(documents.select_for_update().values_list("id", flat=True))
        for key in ids:
            box.model._default_manager.update_or_create(
                **{box.key: key},
                defaults={
                    "state": DeliveryState.PENDING,
                    "attempts": 0,
                    "last_error": "",
                    "next_attempt_at": None,
                },
                create_defaults={"created_at": now},
            )
        box.request_delivery(ids)
    return len(ids)


# --- Delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mail:
    """What an invoice's e-mail and a credit note's differ in."""

    outbox: Outbox[Any]
    related: str  # the e-mail record's path to the customer, read with it
    document: Callable[[Any], Invoice | CreditNote]  # of an e-mail record
    customer: Callable[[Any], Customer]  # of the document
    unwanted: Callable[[Any], str]  # of the document: why not to send it now ("" to send)
    message: Callable[[Any], EmailMessage]  # of the document


def _invoice_unwanted(invoice: Invoice) -> str:
    if invoice.status in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
        return ""
    return f"not sent: the invoice is {invoice.status}"


_INVOICE = _Mail(
    outbox=outbox,
    related="invoice__customer",
    document=lambda record: record.invoice,
    customer=lambda invoice: invoice.customer,
    unwanted=_invoice_unwanted,
    message=lambda invoice: invoice_message(invoice),
)
_CREDIT_NOTE = _Mail(
    outbox=credit_note_outbox,
    related="credit_note__invoice__customer",
    document=lambda record: record.credit_note,
    customer=lambda note: note.invoice.customer,
    unwanted=lambda note: "",  # a credit note stands for good once issued
    message=lambda note: credit_note_message(note),
)


def deliver(*, invoice_id: int, now: datetime | None = None) -> Outcome:
    """Send one invoice's pending e-mail if it is due; record what happened."""
    return _deliver(_INVOICE, invoice_id, now or timezone.now())


def deliver_credit_note(*, credit_note_id: int, now: datetime | None = None) -> Outcome:
    """Send one credit note's pending e-mail if it is due; record what happened."""
    return _deliver(_CREDIT_NOTE, credit_note_id, now or timezone.now())


def _deliver(mail: _Mail, key: int, now: datetime) -> Outcome:
    with transaction.atomic():
        records = mail.outbox.model._default_manager.select_related(mail.related)
        record = mail.outbox.claim(records.filter(**{mail.outbox.key: key}), now).first()
        if record is None:
            return Outcome(Step.IDLE)  # not pending, not due, or another worker has it
        document = mail.document(record)
        reason = mail.unwanted(document)
        if reason:
            record.state = DeliveryState.SKIPPED
            record.last_error = reason
            record.save(update_fields=["state", "last_error"])
            return Outcome(Step.SKIPPED)
        record.attempts += 1
        record.recipient = mail.customer(document).email
        try:
            mail.message(document).send()
        except SoftTimeLimitExceeded:
            # The task ran out of time (a slow server, a long batch): not this e-mail's
            # fault. Rolled back, it stays pending and the sweep sends it; the task stops.
            raise
        except TRANSIENT as exc:
            return _failed(mail.outbox, record, exc, now)
        except Exception as exc:  # not the server's fault: a retry cannot help
            # A message that cannot even be built or handed over (a rendering bug, a bad
            # header) is parked for staff at once rather than retried for ever.
            log.exception("%s: the e-mail could not be built or sent", document.display_number)
            record.attempts = max(record.attempts, settings.INVOICE_EMAIL_MAX_ATTEMPTS)
            return _failed(mail.outbox, record, exc, now)
        record.state = DeliveryState.SENT
        record.sent_at = now
        record.last_error = ""
        record.next_attempt_at = None
        record.save()
    log.info("%s e-mailed (attempt %d)", document.display_number, record.attempts)
    return Outcome(Step.DELIVERED)


def _failed(box: Outbox[Any], record: Any, exc: BaseException, now: datetime) -> Outcome:
    # The server's words, never the URL (EMAIL_URL may carry the password).
    error = f"{type(exc).__name__}: {exc}"
    if record.attempts >= settings.INVOICE_EMAIL_MAX_ATTEMPTS:
        box.park(record, error, fields=["recipient"])
        return Outcome(Step.PARKED)
    delay = box.retry_later(record, error, now=now, fields=["recipient"])
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
    return _message(
        customer,
        details.seller.support_email,
        _("Invoice %(number)s for %(month)s") % names,
        lines,
        (f"{invoice_filename(invoice)}.pdf", invoice_pdf(invoice)),
    )


def _message(
    customer: Customer, support: str, subject: str, lines: list[str], pdf: tuple[str, bytes]
) -> EmailMessage:
    """To the customer, replies to the seller's support address, the PDF attached."""
    message = EmailMessage(
        subject=subject,
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        reply_to=[support] if support else None,
    )
    message.attach(*pdf, "application/pdf")
    return message


def credit_note_message(note: CreditNote) -> EmailMessage:
    """The customer's e-mail about a credit note, in their language: what it credits and
    why, its total, and its PDF attached."""
    with translation.override(note.invoice.customer.language):
        return _credit_note_message(note)


def _credit_note_message(note: CreditNote) -> EmailMessage:
    from usage.einvoice.documents import credit_note_pdf
    from usage.pdf import credit_note_filename

    invoice = note.invoice
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    customer = invoice.customer
    names = {"number": note.display_number, "invoice": invoice.display_number}
    lines = [
        _("Hello %(name)s,") % {"name": customer.name or customer.email},
        "",
        _("your credit note %(number)s for invoice %(invoice)s is attached.") % names,
        _("Reason: %(reason)s") % {"reason": note.reason},
        _("Total: %(amount)s") % {"amount": format_money(note.total, pricing)},
        "",
        _("Thank you."),
    ]
    return _message(
        customer,
        legal.details_of(invoice).seller.support_email,
        _("Credit note %(number)s for invoice %(invoice)s") % names,
        lines,
        (f"{credit_note_filename(note)}.pdf", credit_note_pdf(note)),
    )
