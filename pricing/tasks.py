"""Celery tasks of the price book: thin, the work is in pricing.plan_sync."""

import logging

from celery import shared_task

from bridge.tasks import MIRROR_TASK_OPTIONS
from pricing import plan_sync
from solusio.connect import is_configured

log = logging.getLogger(__name__)


@shared_task(name="pricing.tasks.mirror_plans", **MIRROR_TASK_OPTIONS)
def mirror_plans() -> int:
    """Copy SolusIO's plans (Step 3) next to the price book; never changes a price.
    Returns how many plans SolusIO has (-1: no SolusIO configured)."""
    if not is_configured():
        log.info("mirror plans: SolusIO is not configured; skipped")
        return -1
    plans = plan_sync.mirror_plans()
    differ = plan_sync.disagreements()
    if differ:
        log.warning(
            "mirror plans: %d plans disagree with the price book: %s",
            len(differ),
            "; ".join(str(d) for d in differ),
        )
    return len(plans)
