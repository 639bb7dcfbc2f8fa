"""Celery tasks of payments: thin wrappers around payments.reminders."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

log = logging.getLogger(__name__)


@shared_task(
    name="payments.tasks.send_reminders",
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
    ignore_result=True,
)
def send_reminders(reminder_ids: list[int]) -> None:
    """Deliver these pending reminders; a failed one is asked for again when its retry is
    due (the beat sweep would find it too)."""
    from payments import reminders

    for reminder_id in reminder_ids:
        try:
            outcome = reminders.deliver(reminder_id=reminder_id)
        except SoftTimeLimitExceeded:
            log.warning("reminders: task out of time at %s; the sweep resumes", reminder_id)
            return
        except Exception:
            # The database failed mid-delivery: still pending; the sweep asks again.
            log.exception("reminder %s: delivery failed; the sweep will retry", reminder_id)
            continue
        if outcome.retry_in is not None:
            reminders.outbox.enqueue([reminder_id], countdown=outcome.retry_in)


@shared_task(name="payments.tasks.sweep_reminders", ignore_result=True)
def sweep_reminders() -> int:
    """Re-send reminders the broker lost, and those whose retry is due."""
    from payments import reminders

    return reminders.sweep()
