"""Celery tasks of payments: thin wrappers over payments.reminders, stripe_pay and collect."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from bridge.backoff import Backoff

log = logging.getLogger(__name__)

# A webhook event whose Stripe call failed transiently is asked again after this backoff;
# past the last retry, the sweep finds it still received.
EVENT_RETRY = Backoff(base=5.0, cap=300.0)
EVENT_MAX_RETRIES = 6
# The sweep re-asks for events received longer ago than this and still unprocessed.
SWEEP_AFTER = timedelta(minutes=2)
# Fail fast when the broker is down: the caller is the webhook, and the sweep is the retry.
_PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}


def enqueue_event(event_id: str) -> None:
    try:
        process_stripe_event.apply_async((event_id,), retry=True, retry_policy=_PUBLISH_RETRY)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep covers it
        log.warning("stripe event %s: could not enqueue (%s); the sweep will", event_id, exc)


@shared_task(
    bind=True, name="payments.tasks.process_stripe_event", acks_late=True, ignore_result=True
)
def process_stripe_event(self, event_id: str) -> str:  # type: ignore[no-untyped-def]
    from payments import stripe_pay

    try:
        return stripe_pay.process_event(event_id)
    except stripe_pay.Transient as exc:
        attempt = self.request.retries + 1
        if attempt > EVENT_MAX_RETRIES:
            log.warning("stripe event %s: %s; left for the sweep", event_id, exc)
            return "received"
        log.info("stripe event %s: %s; retrying", event_id, exc)
        raise self.retry(
            countdown=EVENT_RETRY.delay(attempt), max_retries=EVENT_MAX_RETRIES
        ) from exc


@shared_task(name="payments.tasks.collect_invoices", acks_late=True, ignore_result=True)
def collect_invoices(invoice_ids: list[int]) -> int:
    """Charge these newly issued invoices to their customers' saved payment methods."""
    from payments import collect

    made = 0
    for invoice_id in invoice_ids:
        try:
            made += collect.collect(invoice_id=invoice_id) is not None
        except Exception:
            # The database failed mid-way: any attempt row is pending and due, so the
            # sweep asks again; the other invoices are not held up by this one.
            log.exception("automatic collection of invoice %s failed", invoice_id)
    return made


@shared_task(name="payments.tasks.stripe_sweep", ignore_result=True)
def stripe_sweep() -> int:
    """Re-ask for webhook events the broker lost, and retry collections that are due."""
    from payments import collect, stripe_pay
    from payments.models import StripeEvent, StripeEventState

    if not stripe_pay.enabled():
        return 0
    before = timezone.now() - SWEEP_AFTER
    lost = list(
        StripeEvent.objects.filter(state=StripeEventState.RECEIVED, received_at__lt=before)
        .order_by("received_at")
        .values_list("event_id", flat=True)[:500]
    )
    for event_id in lost:
        enqueue_event(event_id)
    return len(lost) + collect.sweep()


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
