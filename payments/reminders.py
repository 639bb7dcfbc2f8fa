"""Payment reminders: the dunning schedule's e-mails about open invoices, at the days from the
due date staff set (BillingSettings.reminder_days), before suspension (usage.dunning).

The sweep writes one reminder per (invoice, step) — a constraint — and asks for delivery when
it commits; delivery is the invoice e-mails' outbox (bridge.outbox): claimed under SKIP
LOCKED, retried with backoff, parked for staff, re-asked by the beat sweep. A reminder whose
invoice was paid or voided before it went out is skipped, never sent."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from bridge.models import DeliveryState
from bridge.money import format_money
from bridge.outbox import Outbox, Outcome, Step
from payments import services
from payments.models import Reminder
from usage import legal
from usage.models import BillingSettings, Invoice, InvoiceStatus
from usage.rules import PricingSnapshot

log = logging.getLogger(__name__)

# Worth another attempt: the server refused, dropped or timed us out, or answered an error.
TRANSIENT = (smtplib.SMTPException, OSError)

outbox: Outbox[Reminder] = Outbox(
    label="payment reminders",
    model=Reminder,
    key="id",
    task="payments.tasks.send_reminders",
    settings_prefix="REMINDER_EMAIL",
    pending=DeliveryState.PENDING,
    parked=DeliveryState.FAILED,
    jitter=0.2,
)
sweep = outbox.sweep


def today(now: datetime) -> date:
    """The calendar day in the billing time zone, as due dates are."""
    return now.astimezone(ZoneInfo(settings.BILLING_TIMEZONE)).date()


def record_due(*, now: datetime | None = None) -> int:
    """Write the reminders that are due at `now`: for each issued invoice with something
    left to pay, the latest step of the schedule its due date has reached, unless that step
    (or a later one) was written already. A missed step is not sent late beside a newer
    one: the customer gets one reminder a step, the newest. Returns how many were written."""
    now = now or timezone.now()
    row = BillingSettings.load()
    steps = row.reminder_offsets()
    if not steps:
        return 0
    day = today(now)
    invoices = list(
        Invoice.objects.filter(status=InvoiceStatus.ISSUED, total__gt=0).values_list(
            "id", "customer_id", "legal__due_date", "issued_at"
        )
    )
    reminded: dict[int, int] = {}
    for invoice_id, days in Reminder.objects.filter(
        invoice__status=InvoiceStatus.ISSUED
    ).values_list("invoice_id", "days"):
        reminded[invoice_id] = max(days, reminded.get(invoice_id, days))
    new: list[Reminder] = []
    for invoice_id, customer_id, due_text, issued_at in invoices:
        if due_text:
            due = date.fromisoformat(due_text)
        else:  # issued before due dates were frozen: the issue date and today's terms
            assert issued_at is not None  # issued
            due = legal.issue_and_due_date(issued_at, row.payment_terms_days)[1]
        reached = [step for step in steps if due + timedelta(days=step) <= day]
        if not reached or reached[-1] <= reminded.get(invoice_id, min(steps) - 1):
            continue
        new.append(
            Reminder(
                invoice_id=invoice_id,
                customer_id=customer_id,
                days=reached[-1],
                number=len(reached),
                due_date=due,
                created_at=now,
            )
        )
    if not new:
        return 0
    with transaction.atomic():
        # A second sweep at once writes the same rows: the constraint keeps one of each.
        Reminder.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        ids = list(
            Reminder.objects.filter(
                state=DeliveryState.PENDING, invoice_id__in=[r.invoice_id for r in new]
            ).values_list("id", flat=True)
        )
        outbox.request_delivery(ids)
    log.info("payment reminders: %d due", len(new))
    return len(new)


def retry(*, reminder_ids: Iterable[int]) -> int:
    """Staff: send failed reminders again (after fixing the mail server or the address),
    unless their invoice was settled meanwhile. Returns how many were queued."""
    with transaction.atomic():
        ids = list(
            Reminder.objects.filter(
                pk__in=list(reminder_ids),
                state=DeliveryState.FAILED,
                invoice__status=InvoiceStatus.ISSUED,
            )
            .select_for_update()
            .values_list("id", flat=True)
        )
        Reminder.objects.filter(pk__in=ids).update(
            state=DeliveryState.PENDING, attempts=0, next_attempt_at=None, last_error=""
        )
        outbox.request_delivery(ids)
    return len(ids)


def deliver(*, reminder_id: int, now: datetime | None = None) -> Outcome:
    """Send one pending reminder if it is due and its invoice still open; record what
    happened."""
    now = now or timezone.now()
    with transaction.atomic():
        records = Reminder.objects.select_related("invoice__customer")
        record = outbox.claim(records.filter(pk=reminder_id), now).first()
        if record is None:
            return Outcome(Step.IDLE)
        invoice = record.invoice
        balance = services.invoice_balance(invoice)
        if invoice.status != InvoiceStatus.ISSUED or balance <= 0:
            record.state = DeliveryState.SKIPPED
            record.last_error = f"not sent: the invoice is {invoice.status}"
            record.save(update_fields=["state", "last_error"])
            return Outcome(Step.SKIPPED)
        record.attempts += 1
        record.recipient = invoice.customer.email
        try:
            reminder_message(record, invoice).send()
        except SoftTimeLimitExceeded:
            raise  # rolled back: still pending, and the sweep asks again
        except TRANSIENT as exc:
            return _failed(record, exc, now)
        except Exception as exc:
            log.exception("reminder %s: the e-mail could not be built or sent", reminder_id)
            record.attempts = max(record.attempts, outbox.setting("MAX_ATTEMPTS"))
            return _failed(record, exc, now)
        record.state = DeliveryState.SENT
        record.sent_at = now
        record.last_error = ""
        record.next_attempt_at = None
        record.save()
    log.info("reminder %d about %s sent", record.number, invoice.display_number)
    return Outcome(Step.DELIVERED)


def _failed(record: Reminder, exc: BaseException, now: datetime) -> Outcome:
    error = f"{type(exc).__name__}: {exc}"  # the server's words, never EMAIL_URL
    if record.attempts >= outbox.setting("MAX_ATTEMPTS"):
        outbox.park(record, error, fields=["recipient"])
        return Outcome(Step.PARKED)
    return Outcome(
        Step.WAIT, retry_in=outbox.retry_later(record, error, now=now, fields=["recipient"])
    )


def reminder_message(record: Reminder, invoice: Invoice) -> EmailMessage:
    """A short note in the customer's language: what is still owed on which invoice, by
    when, and how to pay."""
    with translation.override(invoice.customer.language):
        return _reminder_message(record, invoice)


def _reminder_message(record: Reminder, invoice: Invoice) -> EmailMessage:
    pricing = PricingSnapshot.from_json(invoice.snapshot)
    customer = invoice.customer
    details = legal.details_of(invoice)
    balance = format_money(services.invoice_balance(invoice), pricing)
    due = legal.long_date(record.due_date)
    number = invoice.display_number
    if record.days < 0:
        subject = _("Invoice %(number)s is due on %(due)s") % {"number": number, "due": due}
        opening = _("a friendly reminder that invoice %(number)s is due on %(due)s.") % {
            "number": number,
            "due": due,
        }
    else:
        subject = _("Payment reminder: invoice %(number)s") % {"number": number}
        opening = _(
            "we have not yet received full payment of invoice %(number)s, due on %(due)s."
        ) % {"number": number, "due": due}
    lines = [
        _("Hello %(name)s,") % {"name": customer.name or customer.email},
        "",
        opening,
        _("Amount due: %(amount)s") % {"amount": balance},
    ]
    link = legal.payment_link(details, invoice)
    if link:
        lines.append(_("Pay online: %(link)s") % {"link": link})
    if details.seller.payment_instructions:
        lines += ["", details.seller.payment_instructions]
    lines += ["", _("If you have paid in the meantime, thank you, and please ignore this.")]
    support = details.seller.support_email
    return EmailMessage(
        subject=subject,
        body="\n".join(lines),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        reply_to=[support] if support else None,
    )
