"""Housekeeping tasks of the bridge itself."""

from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from solusio.errors import TRANSIENT_ERRORS

HEARTBEAT_KEY = "bridge:heartbeat"

# Mirroring from SolusIO (beat, hourly): idempotent (update-or-create by SolusIO's id, one
# transaction), so a retry or a duplicate delivery writes the same rows again. Transient
# SolusIO failures are retried with a growing, jittered delay; others fail the run.
MIRROR_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 900,
    "retry_jitter": True,
    "max_retries": 5,
    "soft_time_limit": 300,
    "time_limit": 360,
    "ignore_result": True,
}


@shared_task(name="bridge.tasks.heartbeat", ignore_result=True)
def heartbeat() -> str:
    """Beat sends this every minute; a worker running it proves broker, worker and beat
    are alive. /healthz reports its age."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_KEY, now, timeout=None)
    return now
