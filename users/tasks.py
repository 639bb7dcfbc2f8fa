"""Celery tasks of the user sync: thin, by id, the work is in users.sync and users.reconcile."""

import logging

from celery import shared_task

from bridge.tasks import MIRROR_TASK_OPTIONS
from solusio.connect import is_configured
from users import reconcile as reconciliation
from users import services, sync

log = logging.getLogger(__name__)


@shared_task(name="users.tasks.deliver_customers", acks_late=True, ignore_result=True)
def deliver_customers(customer_ids: list[int]) -> None:
    for customer_id in customer_ids:
        deliver_customer(customer_id)


@shared_task(name="users.tasks.deliver_customer", acks_late=True, ignore_result=True)
def deliver_customer(customer_id: int) -> None:
    result = sync.deliver_pending(customer_id=customer_id)
    if result.stopped is sync.Step.WAIT and result.retry_in is not None:
        # The sweep would find it too; asking for it at the due time is just quicker.
        sync.outbox.enqueue([customer_id], countdown=result.retry_in)


@shared_task(name="users.tasks.sweep_outbox", ignore_result=True)
def sweep_outbox() -> int:
    return sync.sweep()


@shared_task(
    name="users.tasks.reconcile", ignore_result=True, soft_time_limit=3000, time_limit=3600
)
def reconcile(fix: bool = True, run_id: int | None = None) -> dict[str, int]:
    """Beat (no run_id: a new recorded run) or staff's "Reconcile now" (its queued run)."""
    done = reconciliation.run_recorded(fix=fix, trigger="beat", run_id=run_id)
    if done is None:
        return {}  # that run was claimed already (a duplicate delivery)
    _, report = done
    for line in report.lines():
        log.info("reconcile: %s", line)
    return report.counts()


@shared_task(name="users.tasks.mirror_limit_groups", **MIRROR_TASK_OPTIONS)
def mirror_limit_groups() -> int:
    """Copy SolusIO's limit groups (Step 5); returns how many SolusIO has (-1: no SolusIO)."""
    if not is_configured():
        log.info("mirror limit groups: SolusIO is not configured; skipped")
        return -1
    return len(services.mirror_limit_groups())


@shared_task(name="users.tasks.send_portal_reset", ignore_result=True)
def send_portal_reset(customer_id: int | None, reset_url: str) -> None:
    """A customer portal password-reset e-mail (None: an unknown address, nothing to do).
    Not retried: the link is the customer's to ask for again."""
    from users import passwords

    passwords.send_reset(customer_id=customer_id, reset_url=reset_url)
