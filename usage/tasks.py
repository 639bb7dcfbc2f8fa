"""Celery tasks of the cycle: thin wrappers that call usage.close and usage.pull."""

import logging
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from bridge.backoff import Backoff
from solusio.errors import SolusIOError
from solusio.usage_schema import UsageEndpointUnusable
from usage import close, db, pull, selectors, workflow
from usage.cycle import CloseError
from usage.models import ACTIVE_CLOSE_STATES, CloseRun
from usage.rules import Period, previous_period

log = logging.getLogger(__name__)


@shared_task(name="usage.tasks.close_previous_period", acks_late=True, ignore_result=True)
def close_previous_period() -> str:
    """Close last month (in BILLING_TIMEZONE) unless that is done already or under way.

    Beat sends this every hour rather than once at "midnight on the 1st": a crontab in
    Celery's (UTC) clock cannot name the 1st of another zone, and an hourly check also
    catches up when the worker, the beat or SolusIO was down at the turn of the month.
    Once the period is closed, the check is one query. On PostgreSQL the close is submitted
    as a workflow on the close queue (usage/workflow.py); on the embedded SQLite database,
    which one writer at a time serves, it runs here.
    """
    period = previous_period(timezone.now(), settings.BILLING_TIMEZONE)
    if selectors.period_closed(period):
        return f"{period.label}: already closed"
    if not db.is_postgresql():
        return _close_here(period)
    if CloseRun.objects.filter(period=period.month, state__in=ACTIVE_CLOSE_STATES).exists():
        return f"{period.label}: a close is under way"
    try:
        run = workflow.submit(period=period)
    except CloseError as exc:
        return f"{period.label}: not submitted, {exc}"
    return f"{period.label}: close run #{run.pk} submitted"


def _close_here(period: Period) -> str:
    try:
        summary = close.close_cycle(period=period)
    except (UsageEndpointUnusable, CloseError, SolusIOError) as exc:
        # Beat asks again every hour, so it is said once an hour until it is fixed.
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


# The stages of a submitted close (usage/workflow.py): on the close queue, acknowledged
# only when done, and given back to the queue when the worker process dies mid-way.
_STAGE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "bind": True,
}


@shared_task(
    name="usage.tasks.close_pull",
    max_retries=5,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 300,
    **_STAGE,
)
def close_pull(self: Task, run_id: int) -> str:
    """The run's pull: retried with backoff while SolusIO fails; any other error (and
    running out of retries) fails the run, with its error, for staff."""
    try:
        if not workflow.pull_stage(run_id):
            return f"run #{run_id}: pull not ours"
    except workflow.StageLost:
        return f"run #{run_id}: pull taken over"
    except CloseError as exc:  # nothing to build from (no observation, no stored pull)
        workflow.fail_run(run_id, str(exc))
        return f"run #{run_id}: failed"
    except SolusIOError as exc:
        if self.request.retries < self.max_retries and not isinstance(exc, UsageEndpointUnusable):
            attempt = CloseRun.objects.values_list("stage_attempts", flat=True).get(pk=run_id)
            workflow.release_stage(run_id, attempt)
            raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
        workflow.fail_run(run_id, f"pulling usage failed: {exc}")
        return f"run #{run_id}: failed"
    except Exception as exc:
        workflow.fail_run(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return f"run #{run_id}: pulled"


@shared_task(
    name="usage.tasks.close_shard",
    soft_time_limit=3600,
    time_limit=3600 + 120,
    **_STAGE,
)
def close_shard(self: Task, shard_id: int) -> str:
    """One shard's drafts. A failure is retried with backoff (a rebuilt draft is written
    once) up to CLOSE_SHARD_MAX_ATTEMPTS attempts, then fails the run."""
    try:
        if not workflow.run_shard(shard_id):
            return f"shard {shard_id}: not ours"
    except workflow.StageLost:
        return f"shard {shard_id}: taken over"
    except workflow.ShardFailed as failed:
        log.warning("close shard %s failed: %r", shard_id, failed.__cause__)
        if failed.final:
            return f"shard {shard_id}: failed"
        retries = self.request.retries
        raise self.retry(exc=failed, countdown=_backoff(retries), max_retries=None) from failed
    return f"shard {shard_id}: built"


@shared_task(name="usage.tasks.close_issue", soft_time_limit=3600, time_limit=3720, **_STAGE)
def close_issue(self: Task, run_id: int) -> str:
    """The run's issuing step, once every shard is built (asked for by the last one)."""
    try:
        done = workflow.issue_stage(run_id)
    except Exception as exc:
        # Its one transaction rolled back: nothing of it happened. Retried like a shard.
        retries = self.request.retries
        if retries + 1 < settings.CLOSE_SHARD_MAX_ATTEMPTS:
            attempt = CloseRun.objects.values_list("stage_attempts", flat=True).get(pk=run_id)
            workflow.release_stage(run_id, attempt)
            raise self.retry(exc=exc, countdown=_backoff(retries), max_retries=None) from exc
        workflow.fail_run(run_id, f"issuing failed: {type(exc).__name__}: {exc}")
        raise
    return f"run #{run_id}: " + ("issued" if done else "not ours")


@shared_task(name="usage.tasks.close_sweep", ignore_result=True)
def close_sweep() -> int:
    """Ask again for the stages of submitted closes that lost their worker or message."""
    return workflow.sweep()


def _backoff(retries: int) -> float:
    """Seconds before retry `retries + 1` of a close stage (bridge/backoff.py's policy)."""
    return Backoff(settings.CLOSE_RETRY_BASE, settings.CLOSE_RETRY_MAX).delay(retries + 1)


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

    _send_emails(emails.outbox, lambda key: emails.deliver(invoice_id=key), invoice_ids)


@shared_task(
    name="usage.tasks.send_credit_note_emails",
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
    ignore_result=True,
)
def send_credit_note_emails(credit_note_ids: list[int]) -> None:
    """Deliver these credit notes' pending e-mails, as send_invoice_emails does."""
    from usage import emails

    _send_emails(
        emails.credit_note_outbox,
        lambda key: emails.deliver_credit_note(credit_note_id=key),
        credit_note_ids,
    )


def _send_emails(box: Any, deliver: Callable[[int], Any], keys: list[int]) -> None:
    for key in keys:
        try:
            outcome = deliver(key)
        except SoftTimeLimitExceeded:
            # Out of time: stop before the hard limit kills a send half-way; this and the
            # rest are still pending, and the sweep asks for them again.
            log.warning("%s: task out of time at %s; the sweep resumes", box.label, key)
            return
        except Exception:
            # The database failed mid-delivery: the record is still pending, and the sweep
            # asks again; the others of this task are not held up by it.
            log.exception("%s: delivery of %s failed; the sweep will retry", box.label, key)
            continue
        if outcome.retry_in is not None:
            box.enqueue([key], countdown=outcome.retry_in)


@shared_task(name="usage.tasks.sweep_invoice_emails", ignore_result=True)
def sweep_invoice_emails() -> int:
    """Re-send invoice and credit note e-mails the broker lost, and those whose retry is
    due."""
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
