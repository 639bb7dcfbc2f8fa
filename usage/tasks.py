"""Celery tasks of the cycle: thin wrappers that call usage.close and usage.pull."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from solusio.errors import SolusIOError
from solusio.usage_schema import UsageEndpointUnusable
from usage import close, pull, selectors
from usage.rules import previous_period

log = logging.getLogger(__name__)


@shared_task(
    name="usage.tasks.close_previous_period",
    acks_late=True,
    autoretry_for=(SolusIOError,),
    retry_backoff=300,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 300,
    ignore_result=True,
)
def close_previous_period() -> str:
    """Close last month (in BILLING_TIMEZONE) unless that is done already.

    Beat sends this every hour rather than once at "midnight on the 1st": a crontab in
    Celery's (UTC) clock cannot name the 1st of another zone, and an hourly check also
    catches up when the worker, the beat or SolusIO was down at the turn of the month.
    Once the period's pull is complete and its invoices built, the check is one query.
    """
    period = previous_period(timezone.now(), settings.BILLING_TIMEZONE)
    if selectors.period_closed(period):
        return f"{period.label}: already closed"
    try:
        summary = close.close_cycle(period=period)
    except UsageEndpointUnusable as exc:
        # A setting to change, not a passing failure: retrying within the hour cannot help,
        # and beat asks again every hour, so it is said once an hour until it is fixed.
        log.error("close of %s failed: %s", period.label, exc)
        return f"{period.label}: not closed, {exc}"
    log.info(
        "closed %s: %d rows, %d orphans, %d invoices created, %d issued, %d held",
        period.label,
        summary.rows,
        summary.orphans,
        summary.created,
        summary.issued,
        summary.held,
    )
    return f"{period.label}: closed"


@shared_task(name="usage.tasks.dunning_sweep", acks_late=True, ignore_result=True)
def dunning_sweep() -> int:
    """Settle open invoices from credit left unused (a crash between issuing and applying
    it), write the payment reminders that are due, then suspend customers whose issued
    invoices are overdue. Each step is idempotent. Returns how many were suspended."""
    from payments import reminders
    from payments import services as payments
    from usage import dunning

    payments.apply_open_credit()  # first: what credit settles is neither reminded nor dunned
    reminders.record_due()
    return dunning.sweep()


@shared_task(
    name="usage.tasks.refresh_month_to_date",
    acks_late=True,
    soft_time_limit=3600,
    time_limit=3700,
    ignore_result=True,
)
def refresh_month_to_date() -> int:
    """Store this month's usage so far, for the upcoming-invoice previews."""
    return pull.refresh_month_to_date()


@shared_task(
    name="usage.tasks.send_invoice_emails",
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
    ignore_result=True,
)
def send_invoice_emails(invoice_ids: list[int]) -> None:
    """Deliver these invoices' pending e-mails; a failed one is asked for again when its
    retry is due (the beat sweep would find it too; this is only quicker)."""
    from usage import emails

    for invoice_id in invoice_ids:
        try:
            outcome = emails.deliver(invoice_id=invoice_id)
        except SoftTimeLimitExceeded:
            # Out of time: stop before the hard limit kills a send half-way; this and the
            # rest are still pending, and the sweep asks for them again.
            log.warning(
                "invoice e-mails: task out of time at invoice %s; the sweep resumes", invoice_id
            )
            return
        except Exception:
            # The database failed mid-delivery: the record is still pending, and the sweep
            # asks again; the other invoices of this task are not held up by it.
            log.exception("invoice %s: e-mail delivery failed; the sweep will retry", invoice_id)
            continue
        if outcome.retry_in is not None:
            emails.outbox.enqueue([invoice_id], countdown=outcome.retry_in)


@shared_task(name="usage.tasks.sweep_invoice_emails", ignore_result=True)
def sweep_invoice_emails() -> int:
    """Re-send invoice e-mails the broker lost, and those whose retry is due."""
    from usage import emails

    return emails.sweep()


@shared_task(
    name="usage.tasks.observe_servers",
    acks_late=True,
    soft_time_limit=900,
    time_limit=960,
    ignore_result=True,
)
def observe_servers() -> str:
    """One observation poll of SolusIO's servers (DESIGN §4, observed metering)."""
    from usage import observe

    summary = observe.poll_servers()
    return (
        f"{summary.servers} servers: {summary.opened} intervals opened, {summary.ended} ended"
        + (" (skipped: a later poll wrote first)" if summary.skipped else "")
    )
